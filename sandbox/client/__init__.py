"""The sandbox client: the one way the host runs code in the sandbox image.

| module | concern |
| --- | --- |
| :mod:`.jobs` | the job kinds (unittest pairs, CodeT asserts, evalplus checks, expected outputs) |
| :mod:`.results` | job results, a batch's timings, :class:`SandboxError` |
| :mod:`.framing` | the one wire format to and from the runner, for every kind |
| :mod:`.container` | :class:`DockerSandbox`: one locked-down container a batch |
| :mod:`.warm` | :class:`WarmSandbox`: started containers waiting, one batch each |
| :mod:`.bwrap`, :mod:`.cgroups` | :class:`BwrapSandbox`: the same runner under bubblewrap |
| :mod:`.backend` | :class:`Sandbox`, either backend as ``CODERM_SANDBOX__BACKEND`` says |
| :mod:`.retry` | :data:`SANDBOX_ATTEMPTS` and :func:`run_with_retries`, the one retry policy |

The runner inside the container is ``sandbox/coderm_runner`` (standard library only,
shipped in the image); this package runs on the host and is never copied into it.
"""

from sandbox.client.backend import Sandbox, make_sandbox, open_backend
from sandbox.client.bwrap import BwrapSandbox
from sandbox.client.container import DockerSandbox, Progress, default_parallel, open_sandbox
from sandbox.client.jobs import (
    AssertCheck,
    AssertJob,
    EvalplusCheck,
    EvalplusCheckJob,
    ExpectedJob,
    Job,
    UnittestJob,
    pair_job,
)
from sandbox.client.results import BatchResult, JobResult, SandboxError, Timings
from sandbox.client.retry import SANDBOX_ATTEMPTS, run_with_retries
from sandbox.client.warm import WarmSandbox

__all__ = [
    "SANDBOX_ATTEMPTS",
    "AssertCheck",
    "AssertJob",
    "BatchResult",
    "BwrapSandbox",
    "DockerSandbox",
    "EvalplusCheck",
    "EvalplusCheckJob",
    "ExpectedJob",
    "Job",
    "JobResult",
    "Progress",
    "Sandbox",
    "SandboxError",
    "Timings",
    "UnittestJob",
    "WarmSandbox",
    "default_parallel",
    "make_sandbox",
    "open_backend",
    "open_sandbox",
    "pair_job",
    "run_with_retries",
]
