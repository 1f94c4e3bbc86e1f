"""Both sandbox backends against the real thing: the Docker engine with the image built
by sandbox/build.sh, and bubblewrap with that image's file system exported by
deploy/local/lib.sh (``ensure_sandbox_rootfs``). Every hostile-code case runs under
both (the ``sandbox`` fixture and :func:`make` are parametrized over the backend), and a
batch of real pairs must get the same verdicts from both.

bubblewrap runs in both of its modes: ``bwrap`` (the executor as root, a cgroup a run)
and ``bwrap-rootless`` (the executor as uid 65534, as in a pod without privileges:
rlimits under the outer cgroup, sandbox/client/rlimits.py). The rootless executor is a
child process started through ``setpriv`` (:class:`RootlessBwrap`), so nothing of the
root test process helps it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import pytest
import pytest_asyncio

from bench.pair_set import PROBLEMS, build_pairs
from sandbox.client import (
    AssertCheck,
    AssertJob,
    BatchResult,
    BwrapSandbox,
    DockerSandbox,
    Job,
    JobResult,
    Progress,
    Sandbox,
    SandboxError,
    UnittestJob,
    pair_job,
)
from sandbox.client import container as sandbox_module
from sandbox.client.bwrap import SCRATCH
from sandbox.client.cgroups import CGROUP_ROOT, PARENT, cgroup_version
from sandbox.client.container import LABEL
from services.executor.expected_outputs import CanonicalRun, compute_expected, parse_results
from services.executor.ground_truth import outputs_label
from shared.core.oracle import Expected, Oracle
from shared.core.pyliteral import encode
from shared.enums import Outcome
from shared.settings import ExecutorSettings, SandboxSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ExecutorSettings().sandbox  # CODERM_SANDBOX__IMAGE picks another image

# the driver the extractor appends to a CodeRM unit test
DRIVER = """

import io as _io
import unittest as _unittest
_suite = _unittest.TestLoader().loadTestsFromTestCase(TestAddOne)
result = _unittest.TextTestRunner(stream=_io.StringIO()).run(_suite)
"""

# how CodeRM wraps the same test class (run with its executor's globals)
CODERM_DRIVER = """

suite = unittest.TestLoader().loadTestsFromTestCase(TestAddOne)
runner = unittest.TextTestRunner(stream=output, verbosity=2)
result = runner.run(suite)
locals_dict['result'] = result
"""

GOOD = "def add_one(x):\n    return x + 1\n"
WRONG = "def add_one(x):\n    return x + 2\n"
TEST = """import unittest

class TestAddOne(unittest.TestCase):
    def test_small(self):
        self.assertEqual(add_one(1), 2)

    def test_negative(self):
        self.assertEqual(add_one(-5), -4)

    def test_zero(self):
        self.assertEqual(add_one(0), 1)
"""

SESSION = f"{LABEL}.test-session"
RUN = uuid.uuid4().hex
OURS = {SESSION: RUN}

NOT_PASS = {Outcome.FAIL, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASH}

# solutions that misbehave; each must not pass and must not disturb later pairs
HOSTILE: dict[str, str] = {
    "syntax": "def add_one(x)\n    return x + 1\n",
    "loop": "while True:\n    pass\n",
    "ignore_alarm": (
        "import signal\n"
        "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True:\n    pass\n"
    ),
    "fork_bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    ),
    "alloc_8g_module": "_x = bytearray(8 << 30)\n" + GOOD,
    "alloc_8g_test": GOOD + "_blob = None\n",  # allocation happens in the test below
    # stays under RLIMIT_AS but over the container's memory: the OOM killer picks the
    # child (oom_score_adj 1000), never the runner
    "oom_gradual": "_c = []\nwhile True:\n    _c.append(b'x' * (16 << 20))\n" + GOOD,
    "print_gigabytes": (
        "import sys\n"
        "_chunk = 'x' * (1 << 20)\n"
        "for _ in range(1 << 20):\n"
        "    sys.stdout.write(_chunk)\n"
        "    sys.stderr.write(_chunk)\n" + GOOD
    ),
    "socket_loopback": (
        "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=0.5)\n" + GOOD
    ),
    "socket_outside": (
        "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=0.5)\n" + GOOD
    ),
    # a file of the host (this one): not in the container
    "read_host_file": f"open({str(Path(__file__).resolve())!r}).read()\n" + GOOD,
    "sys_exit": "import sys\nsys.exit(0)\n",
    "os_exit": "import os\nos._exit(0)\n",
    "segfault": "import ctypes\nctypes.string_at(0)\n",
    "escaping_grandchild": (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    open('/tmp/marker', 'w').write('x')\n"
        "    while True:\n        time.sleep(1)\n"
        "time.sleep(0.2)\n"
        "raise RuntimeError('parent gives up')\n"
    ),
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + GOOD,
    "kill_everything_os": "import os, signal\nos.kill(-1, signal.SIGKILL)\n" + GOOD,
    # kill(-1) through libc and through the shell: siblings and the process that forks
    # the pairs die; they run again, the killer does not pass
    "kill_everything_libc": "import ctypes\nctypes.CDLL(None).kill(-1, 9)\n" + GOOD,
    "kill_everything_shell": "import os\nos.system('kill -9 -1')\n" + GOOD,
    "was_successful": (
        "import unittest\nunittest.TestResult.wasSuccessful = lambda self: True\n" + WRONG
    ),
    "assert_equal": (
        "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n" + WRONG
    ),
    "print_result": (
        'print(\'{"key": "print_result", "outcome": "pass", "tests_run": 3,'
        ' "tests_passed": 3, "duration_ms": 1.0, "detail": null}\')\n' + WRONG
    ),
    "forge": (
        "import os, json\n"
        "_line = json.dumps({'key': 'forged_victim', 'outcome': 'pass', 'tests_run': 3,"
        " 'tests_passed': 3, 'duration_ms': 1.0, 'detail': None}) + '\\n'\n"
        "for _fd in range(0, 64):\n"
        "    try:\n        os.write(_fd, _line.encode())\n"
        "    except OSError:\n        pass\n"
        "for _name in os.listdir('/proc/1/fd') if os.access('/proc/1/fd', os.R_OK) else []:\n"
        "    try:\n"
        "        with open('/proc/1/fd/' + _name, 'w') as _f:\n            _f.write(_line)\n"
        "    except OSError:\n        pass\n"
        "raise SystemExit(0)\n"
    ),
}

# the test part itself replaces ``result`` with an object that claims success
FAKE_CLASS = (
    "class _Fake:\n    failures = errors = []\n    testsRun = 3\n"
    "    def wasSuccessful(self):\n        return True\n"
)
FAKE_RESULT = FAKE_CLASS + "result = _Fake()\n"


@dataclass(frozen=True)
class Mode:
    """A pair's namespace: strict (our wrapping binds a module-level ``result``) or
    CodeRM's executor's (its wrapping stores the result in ``locals_dict``)."""

    name: str
    driver: str
    reference: bool
    fake_result: str


STRICT = Mode("strict", DRIVER, False, FAKE_RESULT)
REFERENCE = Mode(
    "coderm-ref", CODERM_DRIVER, True, FAKE_CLASS + "locals_dict['result'] = _Fake()\n"
)
MODES = pytest.mark.parametrize("mode", [STRICT, REFERENCE], ids=lambda m: m.name)

ALLOC_TEST = TEST.replace(
    "    def test_zero(self):\n",
    "    def test_zero(self):\n"
    "        _blob = bytearray(8 << 30)\n"
    "        self.assertTrue(_blob)\n",
)


def pair(
    key: str, solution: str, test: str = TEST, limit: float = 1.0, mode: Mode = STRICT
) -> UnittestJob:
    return pair_job(
        key, solution, test + mode.driver, limit, 2 * limit, reference_globals=mode.reference
    )


def summary(results: dict[str, JobResult]) -> str:
    return "\n".join(f"{k}: {r.outcome} {r.duration_ms} {r.detail}" for k, r in results.items())


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The sandbox image, (re)built by sandbox/build.sh, which is a no-op when current."""
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    env = {**os.environ, "CODERM_SANDBOX_IMAGE": SETTINGS.image}
    subprocess.run([str(ROOT / "sandbox" / "build.sh")], check=True, timeout=900, env=env)
    yield SETTINGS.image


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def docker(image: str) -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="module")
def rootfs(image: str) -> str:
    """The bwrap backend's root: the image's file system, exported by the project's
    own script (a no-op when current)."""
    if os.geteuid() != 0 or shutil.which("bwrap") is None:
        pytest.skip("the bwrap backend needs root and bubblewrap (deploy/local/up.sh)")
    script = f'source {ROOT / "deploy/local/lib.sh"} && ensure_sandbox_rootfs "$1"'
    subprocess.run(["bash", "-c", script, "bash", image], check=True, timeout=900)
    return SETTINGS.rootfs_dir


BACKENDS = ("docker", "bwrap", "bwrap-rootless")
Make = Callable[..., Sandbox]
"""``make(settings=SETTINGS, parallel=None)``: a sandbox of the test's backend."""

ROOTLESS_UID = 65534
ROOTLESS_SCRATCH = f"{SCRATCH}/test-{RUN}"
"""The rootless sandboxes' scratch mount points: named by this session, so that its
processes (their bwrap's command line) can be told from any other sandbox's."""

# the rootless executor: runs one batch with BwrapSandbox as the unprivileged user it
# was started as, and answers with the pickled result (or the SandboxError's message);
# log lines go to stderr. SIGINT cancels the batch as it would cancel the executor's.
ROOTLESS_HELPER = """
import asyncio, os, pickle, sys
answer = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
from sandbox.client import BwrapSandbox, SandboxError
from sandbox.client.bwrap import Mounts
settings, jobs, parallel, site_packages, timeout, scratch = pickle.load(sys.stdin.buffer)
sandbox = BwrapSandbox(settings, parallel, Mounts(f"{scratch}/tmp", f"{scratch}/shm"))
assert sandbox.mode == "rlimit" and os.geteuid() != 0, (sandbox.mode, os.geteuid())
sandbox.timeout_s = lambda _jobs: timeout
async def main():
    try:
        return ("ok", await sandbox.run_batch(jobs, None, site_packages))
    except SandboxError as exc:
        return ("error", str(exc))
pickle.dump(asyncio.run(main()), answer)
answer.close()
"""


def rootless_python() -> list[str] | None:
    """An interpreter uid 65534 can run with this checkout's packages: the venv's own,
    or the system's of the same version with the venv's site-packages on the path
    (a venv under /root is out of its reach)."""
    venv_site = next((ROOT / ".venv" / "lib").glob("python3.*/site-packages"), None)
    paths = f"{ROOT}:{venv_site}" if venv_site else str(ROOT)
    candidates = [str(ROOT / ".venv" / "bin" / "python"), f"/usr/bin/python{_minor()}"]
    for python in candidates:
        argv = ["env", f"PYTHONPATH={paths}", python, "-c", "import sandbox.client"]
        probe = subprocess.run(
            [*as_rootless(), *argv], capture_output=True, timeout=60, cwd="/", check=False
        )
        if probe.returncode == 0:
            return ["env", f"PYTHONPATH={paths}", python]
    return None


def _minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def as_rootless() -> list[str]:
    """setpriv: uid and gid 65534, no groups, no capabilities at all."""
    return [
        "setpriv",
        f"--reuid={ROOTLESS_UID}",
        f"--regid={ROOTLESS_UID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


class RootlessBwrap:
    """:class:`Sandbox` through an executor that is not root: every batch runs in a
    child process started as uid 65534 (``ROOTLESS_HELPER``), in ``rlimit`` mode. The
    batch's time-out is computed here (tests patch it), cancellation is SIGINT to the
    child (its BwrapSandbox cancels the run as the executor's would)."""

    def __init__(self, python: list[str], settings: SandboxSettings, parallel: int | None):
        self._python = python
        self._settings = settings.model_copy(update={"backend": "bwrap"})
        self.parallel = parallel or sandbox_module.default_parallel(settings.cpus)

    async def run_batch(
        self,
        jobs: Sequence[Job],
        progress: Progress | None = None,
        site_packages: bool = True,
    ) -> BatchResult:
        timeout = sandbox_module.batch_timeout_s(self._settings, jobs)
        payload = pickle.dumps(
            (self._settings, list(jobs), self.parallel, site_packages, timeout, ROOTLESS_SCRATCH)
        )
        proc = await asyncio.create_subprocess_exec(
            *as_rootless(),
            *self._python,
            "-c",
            ROOTLESS_HELPER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp"},
        )
        try:
            out, err = await proc.communicate(payload)
        except asyncio.CancelledError:
            proc.send_signal(signal.SIGINT)
            await asyncio.shield(proc.wait())
            raise
        if proc.returncode != 0:
            raise AssertionError(f"rootless executor failed: {err.decode(errors='replace')}")
        answer = pickle.loads(out)
        if answer[0] == "error":
            raise SandboxError(answer[1])
        result: BatchResult = answer[1]
        return result

    async def remove_stale_containers(self) -> int:
        """Nothing is left behind in rlimit mode."""
        return 0


@pytest.fixture(scope="module")
def rootless(rootfs: str) -> Iterator[list[str]]:
    """The rootless executor's interpreter, and this session's scratch mount points
    (made here: an unprivileged executor cannot make them under /run; in a pod they
    are an emptyDir)."""
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        pytest.skip("the rootless bwrap mode needs util-linux's setpriv and unshare")
    python = rootless_python()
    if python is None:
        pytest.skip("no interpreter uid 65534 can run with this checkout's packages")
    for name in ("tmp", "shm"):
        os.makedirs(f"{ROOTLESS_SCRATCH}/{name}", mode=0o755, exist_ok=True)
    yield python
    for name in ("tmp", "shm"):
        with contextlib.suppress(OSError):
            os.rmdir(f"{ROOTLESS_SCRATCH}/{name}")
    with contextlib.suppress(OSError):
        os.rmdir(ROOTLESS_SCRATCH)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "bwrap":
        request.getfixturevalue("rootfs")
    if name == "bwrap-rootless":
        request.getfixturevalue("rootless")
    return name


@pytest.fixture
def make(backend: str, docker: aiodocker.Docker, request: pytest.FixtureRequest) -> Make:
    def build(settings: SandboxSettings = SETTINGS, parallel: int | None = None) -> Sandbox:
        if backend == "bwrap":
            return BwrapSandbox(settings.model_copy(update={"backend": "bwrap"}), parallel)
        if backend == "bwrap-rootless":
            return RootlessBwrap(request.getfixturevalue("rootless"), settings, parallel)
        return DockerSandbox(docker, settings, parallel, labels=OURS)

    return build


@pytest.fixture
def sandbox(make: Make) -> Sandbox:
    return make()


@pytest.fixture
def leftovers(backend: str, docker: aiodocker.Docker) -> Callable[[], Any]:
    """This session's sandboxes still there: its containers, or its cgroups (other
    processes may run sandboxes too)."""

    async def ours() -> list[str]:
        if backend == "bwrap-rootless":
            return our_rootless_processes()
        return await our_containers(docker) if backend == "docker" else our_cgroups()

    return ours


def our_rootless_processes() -> list[str]:
    """This session's rootless sandboxes still running: their bwrap processes (named by
    the session's scratch dirs). The sandbox's own processes live in its pid namespace,
    which ends with its PID 1, which bwrap's end kills (``--die-with-parent``)."""
    found: list[str] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if ROOTLESS_SCRATCH.encode() in cmdline and int(entry) != os.getpid():
                found.append(entry)
    return found


async def our_containers(docker: aiodocker.Docker) -> list[str]:
    """This session's sandbox containers (other processes may run sandboxes too)."""
    listed = await docker.containers.list(all=True, filters={"label": [f"{SESSION}={RUN}"]})
    return [c.id for c in listed]


def our_cgroups() -> list[str]:
    """This process's bwrap sandbox cgroups (named ``<pid>-...``)."""
    found: list[str] = []
    parents = (
        [f"{CGROUP_ROOT}/{c}/{PARENT}" for c in ("memory", "pids", "cpu")]
        if cgroup_version() == 1
        else [f"{CGROUP_ROOT}/{PARENT}"]
    )
    for parent in parents:
        if os.path.isdir(parent):
            found += [
                f"{parent}/{n}" for n in os.listdir(parent) if n.startswith(f"{os.getpid()}-")
            ]
    return found


@MODES
async def test_unittest_verdicts_and_containment(
    sandbox: Sandbox, leftovers: Callable[[], Any], mode: Mode
) -> None:
    """Every hostile pair fails as it should, in either namespace, and disturbs none
    of the pairs after it."""
    jobs: list[UnittestJob] = [pair("pass", GOOD, mode=mode), pair("fail", WRONG, mode=mode)]
    for name, solution in HOSTILE.items():
        test = ALLOC_TEST if name == "alloc_8g_test" else TEST
        jobs.append(pair(name, solution, test, mode=mode))
        if name == "forge":
            jobs.append(pair("forged_victim", WRONG, mode=mode))
        # pairs after each hostile one must still get their right verdicts
        jobs.append(pair(f"{name}/after_pass", GOOD, mode=mode))
        jobs.append(pair(f"{name}/after_fail", WRONG, mode=mode))
    fake = TEST + mode.driver + mode.fake_result
    jobs.append(pair_job("fake_result", WRONG, fake, 1.0, 2.0, reference_globals=mode.reference))
    jobs.append(pair("fake_result/after_pass", GOOD, mode=mode))
    jobs.append(
        pair(
            "tmp_is_clean",
            "import os\nassert not os.path.exists('/tmp/marker')\n" + GOOD,
            mode=mode,
        )
    )

    t0 = time.monotonic()
    batch = await sandbox.run_batch(jobs)
    results = batch.results
    elapsed = time.monotonic() - t0
    print(f"\n{len(jobs)} unittest jobs in {elapsed:.2f} s; phases {batch.timings.as_dict()}")
    print(summary(results))

    assert set(results) == {j.key for j in jobs}
    assert results["pass"].outcome == Outcome.PASS
    assert (results["pass"].tests_run, results["pass"].tests_passed) == (3, 3)
    assert results["fail"].outcome == Outcome.FAIL
    assert (results["fail"].tests_run, results["fail"].tests_passed) == (3, 0)
    for name in HOSTILE:
        assert results[name].outcome in NOT_PASS, summary(results)
        assert results[f"{name}/after_pass"].outcome == Outcome.PASS, summary(results)
        assert results[f"{name}/after_fail"].outcome == Outcome.FAIL, summary(results)
    assert results["syntax"].outcome == Outcome.ERROR
    assert results["alloc_8g_module"].outcome == Outcome.ERROR
    assert results["alloc_8g_test"].outcome == Outcome.FAIL
    assert results["socket_loopback"].outcome == Outcome.ERROR
    assert results["socket_outside"].outcome == Outcome.ERROR
    assert results["read_host_file"].outcome == Outcome.ERROR
    assert "FileNotFoundError" in (results["read_host_file"].detail or "")
    assert results["sys_exit"].outcome == Outcome.CRASH
    assert results["os_exit"].outcome == Outcome.CRASH
    assert results["segfault"].outcome == Outcome.CRASH
    assert results["forge"].outcome == Outcome.CRASH
    assert results["forged_victim"].outcome == Outcome.FAIL
    assert results["kill_parent"].outcome == Outcome.CRASH
    assert results["kill_everything_os"].outcome == Outcome.CRASH
    assert results["was_successful"].outcome == Outcome.FAIL  # its failures stand
    assert results["assert_equal"].outcome == Outcome.ERROR
    assert results["print_result"].outcome == Outcome.FAIL
    assert results["fake_result"].outcome == Outcome.ERROR
    assert results["fake_result/after_pass"].outcome == Outcome.PASS
    assert results["tmp_is_clean"].outcome == Outcome.PASS
    for name in ("loop", "ignore_alarm", "print_gigabytes"):
        result = results[name]
        assert result.outcome == Outcome.TIMEOUT
        # killed at the limit, not at the end of whatever it was doing
        assert result.duration_ms is not None and result.duration_ms < 1800
    assert await leftovers() == []


async def test_sleeping_pairs_do_not_hold_the_cpu(make: Make) -> None:
    """On one CPU, 4 pairs that only sleep until a fifth pair has computed something:
    they all pass, so the sleepers did not keep the worker from running (they wait in
    parallel with it, and their waiting is not CPU time)."""
    sleeper = (
        "import os, time\n"
        "_deadline = time.monotonic() + 20\n"
        "while not os.path.exists('/tmp/released'):\n"
        "    assert time.monotonic() < _deadline, 'never released'\n"
        "    time.sleep(0.01)\n" + GOOD
    )
    worker = (
        "import time\n_t = time.process_time()\n"
        "while time.process_time() - _t < 0.05:\n    pass\n"
        "open('/tmp/released', 'w').close()\n" + GOOD
    )
    jobs = [pair(f"sleeper{i}", sleeper + f"# {i}\n", limit=30) for i in range(4)]
    jobs.append(pair("worker", worker, limit=30))
    busy = make(parallel=6)
    results = (await busy.run_batch(jobs)).results
    assert all(r.outcome == Outcome.PASS for r in results.values()), summary(results)


async def test_timeout_counts_module_time(sandbox: Sandbox) -> None:
    slow = "import time\ntime.sleep(0.6)\n" + GOOD
    batch = await sandbox.run_batch(
        [pair("slow_ok", slow, limit=1.0), pair("slow_too_slow", slow, limit=0.3)]
    )
    results = batch.results
    assert results["slow_ok"].outcome == Outcome.PASS
    assert results["slow_too_slow"].outcome == Outcome.TIMEOUT


@MODES
async def test_pairs_next_to_a_fork_bomb_get_their_own_verdicts(
    make: Make, leftovers: Callable[[], Any], mode: Mode, backend: str
) -> None:
    """A fork bomb holds the container's pids limit until its pair ends at 1 s; a
    sibling that starts a process meanwhile fails for the bomb's sake. It runs again
    alone and gets its own verdict (pass); the bomb times out."""
    if backend == "bwrap-rootless":
        pytest.skip(
            "without a pids cgroup there is no pids.events to tell that a sibling's fork "
            "bomb refused a pair's fork (RLIMIT_NPROC is not counted): such a pair is "
            "not run again (docs/KUBERNETES.md)"
        )
    forker = "import subprocess, time\ntime.sleep(0.3)\nsubprocess.run(['true'], check=True)\n"
    jobs = [pair("bomb", HOSTILE["fork_bomb"], mode=mode), pair("forker", forker + GOOD, mode=mode)]
    busy = make(parallel=2)
    results = (await busy.run_batch(jobs)).results
    assert results["forker"].outcome == Outcome.PASS, summary(results)
    assert results["bomb"].outcome == Outcome.TIMEOUT, summary(results)
    assert await leftovers() == []


# solutions and tests that use numpy and pandas as candidate code does
NUMPY_SOLUTION = (
    "import numpy as np\n"
    "def add_one(x):\n"
    "    return int(np.add(np.asarray(x, dtype=np.int64), 1))\n"
)
PANDAS_SOLUTION = (
    "import pandas as pd\n"
    "def add_one(x):\n"
    "    frame = pd.DataFrame({'x': [x]})\n"
    "    frame['y'] = frame['x'] + 1\n"
    "    return int(frame.groupby('x')['y'].sum().iloc[0])\n"
)
NUMPY_TEST = """import unittest
import numpy as np

class TestAddOne(unittest.TestCase):
    def test_many(self):
        got = np.array([add_one(int(v)) for v in np.arange(-3, 4)])
        np.testing.assert_array_equal(got, np.arange(-2, 5))
        self.assertTrue(np.allclose(np.linalg.inv(np.eye(2) * 2), np.eye(2) / 2))

    def test_zero(self):
        self.assertEqual(add_one(0), 1)
"""
PANDAS_TEST = """import unittest
import pandas as pd

class TestAddOne(unittest.TestCase):
    def test_series(self):
        got = pd.Series([1, 2, 3]).map(add_one)
        pd.testing.assert_series_equal(got, pd.Series([2, 3, 4]))

    def test_zero(self):
        self.assertEqual(add_one(0), 1)
"""
PACKAGES_LIMIT_S = 20.0
"""Time limit of the pairs that import numpy or pandas (verdicts, not speed, are tested)."""
# reading memory through ctypes (numpy imported first): refused as without numpy
CTYPES_READ = (
    "import numpy as np, ctypes\n"
    "_a = np.arange(4)\n"
    "_raw = (ctypes.c_char * 8).from_address(_a.ctypes.data).raw\n" + GOOD
)


@MODES
async def test_pairs_see_numpy_and_pandas(sandbox: Sandbox, mode: Mode) -> None:
    """numpy and pandas import and work inside a pair; ctypes is refused with or without
    them. Their import counts against the pair's limit, as in CodeRM's executor (a
    pandas import takes 0.2-0.4 s on a quiet machine): the limit here is generous, so
    that a loaded machine cannot turn a verdict into a timeout."""
    jobs = [
        pair(key, solution, test, limit=PACKAGES_LIMIT_S, mode=mode)
        for key, solution, test in (
            ("numpy", NUMPY_SOLUTION, NUMPY_TEST),
            ("numpy_wrong", NUMPY_SOLUTION.replace(", 1)", ", 2)"), NUMPY_TEST),
            ("pandas", PANDAS_SOLUTION, PANDAS_TEST),
            ("pandas_wrong", PANDAS_SOLUTION.replace("+ 1", "+ 2"), PANDAS_TEST),
            ("numpy_and_pandas", NUMPY_SOLUTION + PANDAS_SOLUTION, NUMPY_TEST),
            ("ctypes_read", CTYPES_READ, TEST),
        )
    ]
    results = (await sandbox.run_batch(jobs)).results
    print(summary(results))
    assert {k: r.outcome for k, r in results.items()} == {
        "numpy": Outcome.PASS,
        "numpy_wrong": Outcome.FAIL,
        "pandas": Outcome.PASS,
        "pandas_wrong": Outcome.FAIL,
        "numpy_and_pandas": Outcome.PASS,
        "ctypes_read": Outcome.ERROR,
    }, summary(results)
    assert "ctypes" in (results["ctypes_read"].detail or "")


async def test_a_standard_library_batch_cannot_import_numpy(sandbox: Sandbox) -> None:
    """``site_packages=False`` (CodeT's environment, the default of assert-style runs):
    neither unittest pairs nor assert jobs (a run's ground truth) see numpy or pandas;
    the same batch with them passes."""
    jobs: list[UnittestJob | AssertJob] = [
        pair("numpy", NUMPY_SOLUTION, NUMPY_TEST, limit=PACKAGES_LIMIT_S),
        AssertJob(
            "pandas_setup",
            PANDAS_SOLUTION,
            (AssertCheck("pandas_check", "assert add_one(1) == 2"),),
            time_limit_s=1.0,
            setup_time_limit_s=PACKAGES_LIMIT_S,
        ),
    ]
    stdlib = (await sandbox.run_batch(jobs, site_packages=False)).results
    assert stdlib["numpy"].outcome is Outcome.ERROR, summary(stdlib)
    assert "No module named 'numpy'" in (stdlib["numpy"].detail or "")
    assert stdlib["pandas_check"].outcome is Outcome.ERROR, summary(stdlib)
    both = (await sandbox.run_batch(jobs)).results
    assert {k: r.outcome for k, r in both.items()} == {
        "numpy": Outcome.PASS,
        "pandas_check": Outcome.PASS,
    }, summary(both)


def _checks(prefix: str, *codes: str) -> tuple[AssertCheck, ...]:
    return tuple(AssertCheck(f"{prefix}/{i}", code) for i, code in enumerate(codes))


async def test_assert_jobs(sandbox: Sandbox, leftovers: Callable[[], Any]) -> None:
    checks = _checks(
        "ok",
        "assert add_one(1) == 2",
        "assert add_one(1) == 3",
        "while True:\n    pass",
        "assert add_one(5) == 6",
        "import os\nos._exit(1)",
        "assert add_one(0) == 1",
        "import sys\nsys.exit(3)",
        "assert add_one(-1) == 0",
        "assert add_one(",
        "raise ValueError('x')",
        "def check(f):\n    assert f(2) == 3\n    assert f(3) == 4\ncheck(add_one)",
    )
    jobs = [
        AssertJob("ok", GOOD, checks, time_limit_s=0.5, setup_time_limit_s=3.0),
        AssertJob(
            "raises",
            GOOD + "raise RuntimeError('setup broke')\n",
            _checks("raises", "assert add_one(1) == 2", "assert add_one(1) == 3"),
            time_limit_s=0.5,
            setup_time_limit_s=3.0,
        ),
        AssertJob(
            "syntax",
            "def add_one(x) return x",
            _checks("syntax", "assert add_one(1) == 2"),
            time_limit_s=0.5,
            setup_time_limit_s=3.0,
        ),
        AssertJob(
            "slow_setup",
            "while True:\n    pass\n",
            _checks("slow_setup", "assert True", "assert True"),
            time_limit_s=0.5,
            setup_time_limit_s=0.5,
        ),
        AssertJob(
            "after",
            GOOD,
            _checks("after", "assert add_one(1) == 2", "assert add_one(1) == 1"),
            time_limit_s=0.5,
            setup_time_limit_s=3.0,
        ),
    ]
    t0 = time.monotonic()
    batch = await sandbox.run_batch(jobs)
    results = batch.results
    print(f"\nassert jobs in {time.monotonic() - t0:.2f} s; phases {batch.timings.as_dict()}")
    print(summary(results))

    expected = {
        "ok/0": Outcome.PASS,
        "ok/1": Outcome.FAIL,
        "ok/2": Outcome.TIMEOUT,
        "ok/3": Outcome.PASS,
        "ok/4": Outcome.CRASH,
        "ok/5": Outcome.PASS,
        "ok/6": Outcome.CRASH,
        "ok/7": Outcome.PASS,
        "ok/8": Outcome.ERROR,
        "ok/9": Outcome.ERROR,
        "ok/10": Outcome.PASS,
        "raises/0": Outcome.ERROR,
        "raises/1": Outcome.ERROR,
        "syntax/0": Outcome.ERROR,
        "slow_setup/0": Outcome.TIMEOUT,
        "slow_setup/1": Outcome.TIMEOUT,
        "after/0": Outcome.PASS,
        "after/1": Outcome.FAIL,
    }
    assert {k: r.outcome for k, r in results.items()} == expected, summary(results)
    assert await leftovers() == []


async def test_cancellation_removes_container(
    sandbox: Sandbox, leftovers: Callable[[], Any]
) -> None:
    task = asyncio.create_task(
        sandbox.run_batch([pair("long", "while True:\n    pass\n", limit=60)])
    )
    deadline = time.monotonic() + 30
    while not await leftovers():
        assert time.monotonic() < deadline, "container never appeared"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await leftovers() == []


async def test_container_timeout_is_a_sandbox_error(
    make: Make, leftovers: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that outlives the batch's worst case is stopped (the container, or
    every process of the bwrap sandbox's cgroup): here the bound is forced down to 2 s
    so that a 60 s pair exceeds it."""
    monkeypatch.setattr(sandbox_module, "worst_case_seconds", lambda _jobs: 0.0)  # both
    settings = SETTINGS.model_copy(
        update={"container_timeout_s": 2.0, "container_timeout_margin_s": 0.0}
    )
    sandbox = make(settings)
    with pytest.raises(SandboxError):
        await sandbox.run_batch([pair("long", "while True:\n    pass\n", limit=60)])
    assert await leftovers() == []


async def test_broken_image_is_a_sandbox_error(docker: aiodocker.Docker, image: str) -> None:
    # the base the image was built from (build.sh labels the image with its id)
    base = (await docker.images.inspect(image))["Config"]["Labels"]["coderm.base.id"]
    settings = SETTINGS.model_copy(update={"image": base})
    sandbox = DockerSandbox(docker, settings, labels=OURS)
    with pytest.raises(SandboxError) as raised:  # no runner in the base image: exits non-zero
        await sandbox.run_batch([pair("x", GOOD)])
    assert raised.value.timings.containers == 1  # the failed run's cost comes with the error
    assert await our_containers(docker) == []


def _oracle(inputs: list[Any], plus_inputs: list[Any], **expected: Any) -> Oracle:
    return Oracle(
        dataset="humaneval",
        atol=0.0,
        base_input=encode(inputs),
        plus_input=encode(plus_inputs),
        base_count=len(inputs),
        plus_count=len(plus_inputs),
        expected=Expected(**expected) if expected else None,
    )


async def test_evalplus_jobs_run_by_the_image_s_own_code(sandbox: Sandbox) -> None:
    """Ground-truth checks and expected outputs go through the same framing as pairs,
    run by the modules shipped in the image; canonical solutions see the standard
    library only, and the run's timings come back with its results."""
    double = "def f(x):\n    return 2 * x\n"
    oracle = _oracle([[1], [2]], [[3]], base="[2, 4]", plus="[6]", base_ms=[1, 1], plus_ms=[1])
    label = outputs_label("f", oracle)
    canonical = [
        CanonicalRun("T/ok", double, "f", _oracle([[1], [2]], [[3]])),
        CanonicalRun("T/numpy", "import numpy\n" + double, "f", _oracle([[1]], [[2]])),
    ]
    jobs: list[Job] = [
        pair("pair", GOOD),
        label.job(1, double, 3.0),
        label.job(2, "def f(x):\n    return x\n", 3.0),
        *(run.job(60.0) for run in canonical),
    ]
    batch = await sandbox.run_batch(jobs)
    results = batch.results
    assert {k: r.outcome for k, r in results.items()} == {
        "pair": Outcome.PASS,
        "gb:1": Outcome.PASS,
        "g:1": Outcome.PASS,
        "gb:2": Outcome.FAIL,
        "g:2": Outcome.FAIL,
        "T/ok": Outcome.PASS,
        "T/numpy": Outcome.ERROR,
    }, summary(results)
    assert batch.timings.containers == 1
    expected = parse_results(results, canonical)
    ok = expected["T/ok"]
    assert isinstance(ok, Expected) and (ok.base, ok.plus) == ("[2, 4]", "[6]")
    assert "No module named 'numpy'" in str(expected["T/numpy"])


async def test_compute_expected_through_the_client(docker: aiodocker.Docker) -> None:
    runs = [CanonicalRun("T/1", "def f(x):\n    return [x] * x\n", "f", _oracle([[1]], [[2]]))]
    settings = SETTINGS.model_copy(update={"container_timeout_s": 60.0})
    results = await compute_expected(DockerSandbox(docker, settings), runs, per_problem_s=30.0)
    got = results["T/1"]
    assert isinstance(got, Expected) and (got.base, got.plus) == ("[[1]]", "[[2, 2]]")


async def test_remove_stale_containers(docker: aiodocker.Docker) -> None:
    sandbox = DockerSandbox(docker, SETTINGS, labels=OURS)
    await docker.containers.create(sandbox.container_config())
    assert len(await our_containers(docker)) == 1
    assert await sandbox.remove_stale_containers() >= 1  # others' stale ones go too
    assert await our_containers(docker) == []


async def test_bwrap_without_a_root_is_a_sandbox_error(rootfs: str, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(update={"backend": "bwrap", "rootfs_dir": str(tmp_path)})
    with pytest.raises(SandboxError, match="root file system"):
        await BwrapSandbox(settings).run_batch([pair("x", GOOD)])
    assert our_cgroups() == []


def _cgroup_parents() -> list[str]:
    if cgroup_version() == 1:
        return [f"{CGROUP_ROOT}/{c}/{PARENT}" for c in ("memory", "pids", "cpu")]
    return [f"{CGROUP_ROOT}/{PARENT}"]


def _cgroups_named(name: str) -> list[bool]:
    return [os.path.isdir(f"{parent}/{name}") for parent in _cgroup_parents()]


def _make_cgroups(*names: str) -> None:
    for parent in _cgroup_parents():
        for name in names:
            os.makedirs(f"{parent}/{name}", exist_ok=True)


def _remove_cgroups(*names: str) -> None:
    for parent in _cgroup_parents():
        for name in names:
            if os.path.isdir(f"{parent}/{name}"):
                os.rmdir(f"{parent}/{name}")


async def test_bwrap_removes_stale_cgroups(rootfs: str) -> None:
    """A cgroup whose owner pid is gone (a crashed executor's) is removed; one of a live
    process is kept."""
    stale = f"{2**22 + 1}-deadbeef"  # above any pid_max: no live owner
    live = f"{os.getpid()}-keepme"
    _make_cgroups(stale, live)
    try:
        sandbox = BwrapSandbox(SETTINGS.model_copy(update={"backend": "bwrap"}))
        assert await sandbox.remove_stale_containers() >= 1
        assert not any(_cgroups_named(stale))
        assert all(_cgroups_named(live))
    finally:
        _remove_cgroups(stale, live)


SAME_TASKS = ("HumanEval/0", "HumanEval/12", "HumanEval/23")


def same_task_jobs() -> list[UnittestJob]:
    """Real pairs of :data:`SAME_TASKS` (CodeGen-16B solutions x unittest-wrapped
    tests, CodeRM's executor's globals), with limits generous enough that only code
    that never ends times out, whatever the load."""
    assert PROBLEMS.exists(), f"reference data not found at {PROBLEMS}"
    return [
        pair_job(
            f"{p.task_id}/{p.sol_id}/{p.ut_id}",
            p.solution,
            p.test,
            5.0,
            10.0,
            reference_globals=True,
        )
        for p in build_pairs()
        if p.task_id in SAME_TASKS
    ]


async def test_both_backends_give_the_same_verdicts(
    rootfs: str, docker: aiodocker.Docker, rootless: list[str]
) -> None:
    """Real pairs (CodeGen-16B solutions x unittest-wrapped tests, CodeRM's executor's
    globals) get the same verdict, tests run and tests passed from both backends, bwrap
    in both of its modes. The limit is generous so that only code that never ends
    times out, whatever the load."""
    jobs = same_task_jobs()
    docker_results = (await DockerSandbox(docker, SETTINGS, labels=OURS).run_batch(jobs)).results
    bwrap_settings = SETTINGS.model_copy(update={"backend": "bwrap"})
    bwrap_results = (await BwrapSandbox(bwrap_settings).run_batch(jobs)).results
    rootless_results = (await RootlessBwrap(rootless, SETTINGS, None).run_batch(jobs)).results

    def verdicts(results: dict[str, JobResult]) -> dict[str, tuple[Any, ...]]:
        return {k: (r.outcome, r.tests_run, r.tests_passed) for k, r in results.items()}

    assert len(jobs) > 100
    assert verdicts(bwrap_results) == verdicts(docker_results)
    assert verdicts(rootless_results) == verdicts(docker_results)
    outcomes = {r.outcome for r in docker_results.values()}
    assert {Outcome.PASS, Outcome.FAIL} <= outcomes, outcomes
