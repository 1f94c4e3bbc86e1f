"""A client of the reward gateway, standard library only, usable as verl's custom reward
function (``custom_reward_function.path=.../services/gateway/client.py``).

Set ``CODERM_REWARD_URL`` (e.g. ``http://127.0.0.1:8700``), ``CODERM_REWARD_TOKEN``
and optionally ``CODERM_REWARD_NAME`` (``pass_fraction`` by default; ``all_pass``,
``majority``, ``codet``). The ``ground_truth`` of each sample names its problem,
``BENCHMARK:TASK_ID`` (e.g. ``humaneval:HumanEval/0``).

- ``compute_score(data_source, solution_str, ground_truth, extra_info=None)``: one
  response (verl's naive reward manager);
- ``compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos)``: a
  batch in one request, grouped by problem for the group rewards (verl's batch reward
  manager);
- :func:`rewards`: the native API for any other trainer.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any


def _post(path: str, body: dict[str, Any], attempts: int = 5) -> dict[str, Any]:
    url = os.environ.get("CODERM_REWARD_URL", "http://127.0.0.1:8700").rstrip("/") + path
    token = os.environ.get("CODERM_REWARD_TOKEN", "")
    data = json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(
            url,
            data=data,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as reply:
                answer: dict[str, Any] = json.loads(reply.read())
                return answer
        except urllib.error.HTTPError as error:
            if error.code not in (429, 502, 503, 504) or attempt == attempts - 1:
                raise
            time.sleep(float(error.headers.get("Retry-After") or 1))
        except urllib.error.URLError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    raise RuntimeError("unreachable")


def _problem(ground_truth: str) -> dict[str, str]:
    benchmark, _, task_id = ground_truth.partition(":")
    return {"benchmark": benchmark, "task_id": task_id}


def rewards(
    responses: Sequence[str],
    problems: Sequence[str],
    groups: Sequence[str] | None = None,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """Each response's result (extraction, tests run and passed, every reward) from
    ``POST /v1/rewards``; ``request_id`` makes a retry return the same answer."""
    items = [
        {
            "problem": _problem(p),
            "response": r,
            **({"group": groups[n]} if groups is not None else {}),
        }
        for n, (r, p) in enumerate(zip(responses, problems, strict=True))
    ]
    body: dict[str, Any] = {"items": items}
    if request_id is not None:
        body["request_id"] = request_id
    results: list[dict[str, Any]] = _post("/v1/rewards", body)["results"]
    return results


def _name() -> str:
    return os.environ.get("CODERM_REWARD_NAME", "pass_fraction")


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None
) -> float:
    """verl's per-sample reward: the response's reward against its problem's tests."""
    (result,) = rewards([solution_str], [ground_truth])
    return float(result["rewards"][_name()])


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Sequence[Any] | None = None,
) -> list[float]:
    """verl's batch reward: one request, the responses to one problem a group."""
    results = rewards(solution_strs, ground_truths, groups=list(ground_truths))
    return [float(r["rewards"][_name()]) for r in results]
