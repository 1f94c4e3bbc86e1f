"""Run canonical solutions on their inputs in a sandbox container; return the outputs.

The container has exactly the executor's isolation (:meth:`DockerSandbox.container_config`:
no network, read-only root, memory/pids/CPU limits, no capabilities, unprivileged user);
only its command differs: a bootstrap that executes
:mod:`services.executor.evalplus_expected`, sent with the problems over stdin. Outputs
come back as ``repr`` text and are accepted only if :func:`shared.core.pyliteral.decode`
reads them back with the right count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker

from services.executor.json_lines import read_json_lines
from services.executor.sandbox import DockerSandbox
from shared.core.oracle import Expected, Oracle
from shared.core.pyliteral import LiteralError, decode
from shared.settings import SandboxSettings

_HERE = Path(__file__).parent
PROGRAMS = [
    (_HERE / "evalplus_check.py").read_text(encoding="utf-8"),
    (_HERE / "evalplus_expected.py").read_text(encoding="utf-8"),
    "main(PAYLOAD)\n",
]
BOOTSTRAP = (
    "import json,struct,sys,zlib\n"
    "r=sys.stdin.buffer\n"
    "n=struct.unpack('>Q',r.read(8))[0]\n"
    "p=json.loads(zlib.decompress(r.read(n)))\n"
    "g={'__name__':'__coderm_expected__','PAYLOAD':p}\n"
    "for s in p.pop('programs'):exec(compile(s,'<coderm-expected>','exec'),g)\n"
)
ENTRYPOINT = ["python3", "-I", "-S", "-c", BOOTSTRAP]
MAX_OUTPUT_BYTES = 1 << 30


class ExpectedOutputsError(Exception):
    """The sandbox could not compute expected outputs at all (not one problem's failure)."""


@dataclass(frozen=True)
class CanonicalRun:
    """One problem to run: its canonical program and its inputs."""

    task_id: str
    code: str
    entry_point: str
    oracle: Oracle


def encode_payload(problems: Sequence[CanonicalRun], timeout_s: float) -> bytes:
    """The container's stdin: 8-byte length, then zlib-compressed JSON."""
    body = {
        "programs": PROGRAMS,
        "timeout_s": timeout_s,
        "problems": [
            {
                "task_id": p.task_id,
                "code": p.code,
                "entry_point": p.entry_point,
                "dataset": p.oracle.dataset,
                "atol": p.oracle.atol,
                "base_input": p.oracle.base_input,
                "plus_input": p.oracle.plus_input,
                "output_not_none": p.oracle.output_not_none,
            }
            for p in problems
        ],
    }
    data = zlib.compress(json.dumps(body).encode(), 6)
    return struct.pack(">Q", len(data)) + data


def _expected(line: dict[str, Any], oracle: Oracle) -> Expected | str:
    """The validated outputs of one result line, or why they are unusable."""
    if "error" in line:
        return str(line["error"])
    try:
        expected = Expected.model_validate({k: line[k] for k in Expected.model_fields if k in line})
        base, plus = decode(expected.base), decode(expected.plus)
    except (KeyError, ValueError, LiteralError) as error:
        return f"unreadable outputs: {error}"
    counts = (len(base), len(expected.base_ms), len(plus), len(expected.plus_ms))
    if counts != (oracle.base_count, oracle.base_count, oracle.plus_count, oracle.plus_count):
        return f"output counts {counts} do not match the inputs"
    for outputs, digests in ((base, expected.base_digests), (plus, expected.plus_digests)):
        if any(
            not k.isdigit() or int(k) >= len(outputs) or outputs[int(k)] is not None
            for k in digests
        ):
            return "digests do not match the outputs they stand for"
    return expected


def parse_results(stdout: bytes, problems: Sequence[CanonicalRun]) -> dict[str, Expected | str]:
    """Each problem's outputs (or the reason it has none) from the container's stdout."""
    by_id = {p.task_id: p for p in problems}
    try:
        lines = read_json_lines(stdout)
    except ValueError as error:
        raise ExpectedOutputsError(f"sandbox output: {error}") from error
    if not lines.done:
        raise ExpectedOutputsError("sandbox output has no end marker")
    results: dict[str, Expected | str] = {}
    for line in lines.records:
        if line.get("task_id") in by_id:
            results[line["task_id"]] = _expected(line, by_id[line["task_id"]].oracle)
    for task_id in by_id.keys() - results.keys():
        results[task_id] = "no result from the sandbox"
    return results


async def _attach_run(docker: aiodocker.Docker, config: dict[str, Any], payload: bytes) -> bytes:
    container = await docker.containers.create(config)
    try:
        stream = container.attach(stdin=True, stdout=True, stderr=True)
        out = bytearray()
        err = bytearray()
        async with stream:
            await container.start()
            await stream.write_in(payload)
            while (message := await stream.read_out()) is not None:
                target = err if message.stream == 2 else out
                target += message.data
                if len(out) > MAX_OUTPUT_BYTES:
                    raise ExpectedOutputsError("sandbox output too large")
        status = await container.wait()
        if status.get("StatusCode") != 0:
            tail = bytes(err[-2000:]).decode(errors="replace")
            raise ExpectedOutputsError(f"sandbox exited with {status.get('StatusCode')}: {tail}")
        return bytes(out)
    finally:
        with contextlib.suppress(aiodocker.DockerError):
            await asyncio.shield(container.delete(force=True))


async def compute_expected(
    docker: aiodocker.Docker,
    settings: SandboxSettings,
    problems: Sequence[CanonicalRun],
    per_problem_s: float = 120.0,
) -> dict[str, Expected | str]:
    """Run the problems' canonical solutions in one sandbox container; return each
    problem's expected outputs, or the reason it has none (raised, timed out, outputs
    that are not plain data)."""
    if not problems:
        return {}
    timeout = per_problem_s * len(problems) + settings.container_timeout_margin_s
    config = DockerSandbox(docker, settings).container_config(deadline=time.time() + timeout)
    config["Entrypoint"] = ENTRYPOINT
    try:
        async with asyncio.timeout(timeout):
            stdout = await _attach_run(docker, config, encode_payload(problems, per_problem_s))
    except TimeoutError as error:
        raise ExpectedOutputsError(f"sandbox exceeded {timeout:.0f} s") from error
    except (aiodocker.DockerError, OSError) as error:
        raise ExpectedOutputsError(f"sandbox failed: {error}") from error
    return parse_results(stdout, problems)
