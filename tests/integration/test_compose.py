"""The composed stack: images built offline, compose up, migrations, the demo, three
executors sharing a run, compose down.

``make images`` (deploy/images/build.sh) builds the images (a few seconds when they
exist; about 10 min the first time); the stack comes up under a project name of its
own, from an env file of its own with host ports that are free (the local stack holds
5432, 5672, 15672, 8700 and the 97xx metrics ports; the services' metrics ports stay
inside their containers), and is taken down with its volumes at the end.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stack import ROOT

pytestmark = [pytest.mark.long, pytest.mark.integration, pytest.mark.timeout(1800)]

IMAGES = ROOT / "deploy" / "images"
# small enough for minutes on two cores, and batches of two solutions so that three
# executors all get some of a run
DEMO = ("--problems", "3", "--n", "10")
SCALED_RUN = (
    *("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b"),
    *("--n", "10", "--m", "100", "--problems", "3", "--name", "scaled"),
    # another execution profile than the demo's, so no verdict comes from its cache
    *("--assert-time-limit", "0.2"),
)
RUN_ID = re.compile(r"run ([0-9a-f-]{36}) submitted")


@dataclass(frozen=True)
class Compose:
    """One composed stack: its project name and env file."""

    project: str
    env_file: Path

    def command(self, *args: str) -> list[str]:
        """The compose command line for ``args`` (compose.sh finds the implementation)."""
        return [
            "bash",
            str(IMAGES / "compose.sh"),
            *("--env-file", str(self.env_file), "--project-name", self.project),
            *args,
        ]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        """Run compose with ``args``; its stdout (and stderr) as text."""
        done = subprocess.run(
            self.command(*args),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {done.returncode}:\n{output}")
        return output

    def containers(self, service: str) -> list[str]:
        """The ids of ``service``'s running containers."""
        return self.run("ps", "-q", service, timeout=60).split()

    def coderm(self, *args: str, timeout: float = 900) -> str:
        """The coderm command in a one-off container of the ``cli`` service."""
        return self.run("run", "--rm", "-T", "cli", "coderm", *args, timeout=timeout)


def build_images(env_file: Path) -> None:
    """``make images``' script, writing the stack's env file."""
    done = subprocess.run(
        ["bash", str(IMAGES / "build.sh"), "--env-file", str(env_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def docker_answers() -> bool:
    """Whether the Docker engine answers."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    """The stack up (one executor), migrated, under a project name of its own."""
    if not docker_answers():
        pytest.fail("the Docker engine does not answer (deploy/local/up.sh starts it)")
    env_file = tmp_path_factory.mktemp("compose") / "compose.env"
    project = f"codermtest{uuid.uuid4().hex[:8]}"
    build_images(env_file)
    subprocess.run(
        [
            *("bash", str(IMAGES / "compose-env.sh"), "--file", str(env_file)),
            f"COMPOSE_PROJECT_NAME={project}",
            "CODERM_SOLUTIONS_PER_BATCH=2",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert env_file.stat().st_mode & 0o777 == 0o600
    stack = Compose(project, env_file)
    try:
        stack.run("up", "-d", timeout=600)
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", timeout=300, check=False)


def executor_events(stack: Compose, run_id: str) -> dict[str, list[dict[str, object]]]:
    """The ``batch.executed`` events of ``run_id`` in each executor container's log."""
    events: dict[str, list[dict[str, object]]] = {}
    for container in stack.containers("executor"):
        logs = subprocess.run(
            ["docker", "logs", container], capture_output=True, text=True, timeout=60, check=True
        )
        found = events.setdefault(container, [])
        for line in (logs.stdout + logs.stderr).splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(event, dict)
                and event.get("event") == "batch.executed"
                and event.get("run_id") == run_id
            ):
                found.append(event)
    return events


def execute_consumers(stack: Compose) -> int:
    """Consumers of the ``coderm.execute`` queue, as RabbitMQ counts them."""
    out = stack.run(
        *("exec", "-T", "rabbitmq", "rabbitmqctl", "-q", "list_queues"),
        *("-p", env_value(stack.env_file, "RABBITMQ_DEFAULT_VHOST"), "name", "consumers"),
        timeout=60,
        check=False,
    )
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "coderm.execute" and fields[1].isdigit():
            return int(fields[1])
    return 0


def env_value(env_file: Path, key: str) -> str:
    """``key``'s value in an env file."""
    for line in env_file.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise KeyError(key)


def test_stack_is_up_and_migrated(compose: Compose) -> None:
    """Every long-running service runs, and the migration step took the database to head."""
    for service in ("postgres", "rabbitmq", "generator", "extractor", "executor", "scorer"):
        assert compose.containers(service), f"{service} is not running"
    assert compose.containers("gateway"), "gateway is not running"
    version = compose.run(
        *("exec", "-T", "postgres", "psql", "-X", "-tA"),
        *("-U", env_value(compose.env_file, "POSTGRES_USER")),
        *("-d", env_value(compose.env_file, "POSTGRES_DB")),
        *("-c", "SELECT version_num FROM alembic_version"),
        timeout=60,
    ).strip()
    heads = compose.run("run", "--rm", "-T", "--no-deps", "cli", "alembic", "heads", timeout=300)
    assert version and version in heads, (version, heads)


def test_demo_through_the_composed_services(compose: Compose) -> None:
    """``coderm demo`` in a container: the sample imported, scored, the table printed."""
    out = compose.coderm("demo", *DEMO)
    assert "benchmark humaneval: 20 problems in file" in out, out
    assert RUN_ID.search(out), out
    for strategy in ("vanilla", "oracle", "codet", "coderm_majority"):
        assert strategy in out, f"{strategy} missing from the demo's table:\n{out}"
    assert "pass@1" in out, out


def test_three_executors_share_a_run(compose: Compose) -> None:
    """``up --scale executor=3``: a run's batches are executed by all three replicas."""
    compose.run("up", "-d", "--scale", "executor=3", timeout=600)
    deadline = time.monotonic() + 180
    while execute_consumers(compose) < 3:
        assert time.monotonic() < deadline, "three executors did not consume coderm.execute"
        time.sleep(2)
    assert len(compose.containers("executor")) == 3

    out = compose.coderm("run", *SCALED_RUN)
    match = RUN_ID.search(out)
    assert match, out
    run_id = match.group(1)
    assert "codet" in out, out

    events = executor_events(compose, run_id)
    assert len(events) == 3, events.keys()
    working = {
        container: {str(event["executor"]) for event in found if event.get("pairs")}
        for container, found in events.items()
    }
    idle = [container for container, names in working.items() if not names]
    assert not idle, f"executors that ran no pair of the run: {idle} ({working})"
    # each replica names itself in its events (host name = its container id)
    names = set().union(*working.values())
    assert len(names) == 3, names
