"""A private PostgreSQL, RabbitMQ and Docker engine for the fault tests.

The fault tests stop, kill, restart and fill these servers; the shared ones (which
other test sessions on the machine use) are never touched. Each server is started by
this module from the Debian packages (postgresql, rabbitmq-server, docker.io; installed
if missing, like deploy/local/lib.sh's ``ensure_packages``), with its data, sockets and
logs under one temporary directory that :meth:`PrivateInfra.close` removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.stack import wait_for

PACKAGES = ("postgresql", "rabbitmq-server", "docker.io")
SANDBOX_IMAGE = os.environ.get("CODERM_SANDBOX__IMAGE", "coderm-sandbox:latest")


def ensure_packages(*names: str) -> None:
    """Install the Debian packages among ``names`` that are missing."""
    missing = [
        name
        for name in names
        if "install ok installed"
        not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
        ).stdout
    ]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            check=True,
            env=env,
        )


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return versions[-1] / "bin"


def _as_postgres(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        cwd="/",
        capture_output=True,
        text=True,
        check=check,
    )


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb + pg_ctl) on a free port."""

    base: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.base / "data"

    @property
    def admin_dsn(self) -> str:
        """A superuser DSN to the ``postgres`` database (trust authentication)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        _as_postgres(
            str(_pg_bin() / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.base / "postgres.log"),
            "-w",
            "-t",
            "120",
            *args,
        )

    def create(self) -> None:
        """initdb and start the cluster."""
        self.base.mkdir(parents=True)
        shutil.chown(self.base, "postgres", "postgres")
        _as_postgres(
            str(_pg_bin() / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        )
        options = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.base}'",
            "max_connections = 200",
        ]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(options) + "\n")
        self.start()

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        self._ctl("start")

    def restart_fast(self) -> None:
        """``pg_ctl restart -m fast``: every session is ended, the server comes back."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the cluster (immediate: it is thrown away)."""
        self._ctl("stop", "-m", "immediate")


@dataclass
class PrivateRabbit:
    """A RabbitMQ node of our own: own name, ports, epmd, mnesia and logs; guest user."""

    base: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"coderm-faults-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of the node's default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        """The environment that names this node to rabbitmq-server and rabbitmqctl."""
        return {
            **os.environ,
            "HOME": str(self.base / "home"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def create(self) -> None:
        """Write the node's files and start it."""
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir(parents=True)
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(
            "disk_free_limit.absolute = 50MB\nloopback_users = none\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        self.start()

    def start(self) -> None:
        """Start the node (the same mnesia: durable queues and persistent messages come
        back) and wait until it takes AMQP connections."""
        log = (self.base / "log" / "server.out").open("ab")
        self.process = subprocess.Popen(
            ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_for(self.ready, 180, f"RabbitMQ node {self.node} (logs in {self.base / 'log'})", 1)

    def ready(self) -> bool:
        """Whether the node has finished booting."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited: logs in {self.base / 'log'}")
        if not _port_open(self.port):
            return False
        done = subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", "await_startup", "--timeout", "5"],
            env=self.env(),
            capture_output=True,
            check=False,
            timeout=60,
        )
        return done.returncode == 0

    def stop(self) -> None:
        """Stop the node gracefully (SIGTERM: rabbitmq-server's own shutdown)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        self.process = None
        wait_for(lambda: not _port_open(self.port), 60, "the stopped node's port to close")

    def kill(self) -> None:
        """SIGKILL the node's whole process group (the Erlang VM with it)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self.process = None
        wait_for(lambda: not _port_open(self.port), 60, "the killed node's port to close")

    def close(self) -> None:
        """Kill the node and its epmd."""
        if self.process is not None:
            self.kill()
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True, check=False
        )


@dataclass
class PrivateDocker:
    """A dockerd of our own: own socket, data and exec roots, no bridge, no iptables."""

    base: Path
    process: subprocess.Popen[bytes] | None = None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def socket(self) -> Path:
        """The engine's unix socket."""
        return self.base / "docker.sock"

    @property
    def url(self) -> str:
        """The engine's address for DOCKER_HOST and aiodocker."""
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine."""
        return subprocess.run(
            ["docker", "-H", self.url, *args], capture_output=True, text=True, check=check
        )

    def create(self) -> None:
        """Start the engine and load the sandbox image into it from the shared one."""
        self.base.mkdir(parents=True)
        (self.base / "daemon.json").write_text("{}\n")
        self.start()
        save = subprocess.Popen(["docker", "save", SANDBOX_IMAGE], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "-H", self.url, "load"], stdin=save.stdout, capture_output=True, check=False
        )
        assert save.stdout is not None
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"loading {SANDBOX_IMAGE} failed: {load.stderr!r}")

    def start(self) -> None:
        """Start dockerd and wait until it answers."""
        log = (self.base / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "-H",
                self.url,
                "--config-file",
                str(self.base / "daemon.json"),
                "--data-root",
                str(self.base / "data"),
                "--exec-root",
                str(self.base / "x"),
                "--pidfile",
                str(self.base / "docker.pid"),
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                f"--cgroup-parent=/coderm-faults-{self.tag}",
                f"--containerd-namespace=coderm-faults-{self.tag}",
                f"--containerd-plugins-namespace=coderm-faults-{self.tag}-plugins",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_for(self.ready, 120, f"the private dockerd (log {self.base / 'dockerd.log'})", 1)

    def ready(self) -> bool:
        """Whether the engine answers."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"dockerd exited: see {self.base / 'dockerd.log'}")
        return self.docker("info", check=False).returncode == 0

    def stop(self) -> None:
        """Stop dockerd as its service manager would (SIGTERM); its containers stop."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        self.process = None

    def containers(self) -> list[str]:
        """The ids of every container the engine has, whatever its state."""
        return self.docker("ps", "-aq").stdout.split()

    def close(self) -> None:
        """Remove every container, stop the engine and unmount what it left mounted."""
        if self.process is not None:
            ids = self.containers()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            self.stop()
        unmount_under(self.base)


@dataclass
class PrivateInfra:
    """The three private servers under one temporary directory."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cf-", dir="/tmp")))
    postgres: PrivatePostgres = field(init=False)
    rabbit: PrivateRabbit = field(init=False)
    docker: PrivateDocker = field(init=False)

    def __post_init__(self) -> None:
        os.chmod(self.base, 0o755)
        self.postgres = PrivatePostgres(self.base / "pg")
        self.rabbit = PrivateRabbit(self.base / "mq")
        self.docker = PrivateDocker(self.base / "d")

    def start(self) -> None:
        """Install what is missing and start the three servers."""
        ensure_packages(*PACKAGES)
        self.postgres.create()
        self.rabbit.create()
        self.docker.create()

    def service_env(self) -> dict[str, str]:
        """What points a service's sandboxes at the private engine."""
        return {"CODERM_SANDBOX__DOCKER_URL": self.docker.url, "DOCKER_HOST": self.docker.url}

    def close(self) -> None:
        """Stop the three servers and remove their files."""
        for step in (self.docker.close, self.rabbit.close, self._stop_postgres):
            with contextlib.suppress(Exception):
                step()
        unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)

    def _stop_postgres(self) -> None:
        if (self.postgres.data / "postmaster.pid").exists():
            self.postgres.stop()


def unmount_under(base: Path) -> None:
    """Lazily unmount every mount point under ``base`` (deepest first)."""
    with Path("/proc/mounts").open() as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{base}/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
