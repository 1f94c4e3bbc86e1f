"""Batch runner executed inside the sandbox container (stdlib only, Python 3.11).

Run as ``python3 -I -S /opt/coderm/runner.py`` (the entry script next to this
package) by an unprivileged user, normally as PID 1 of a container with a read-only
root, a tmpfs ``/tmp`` and no network. The script and this package are all that is
copied into the image.

Modules: :mod:`.batch` (input, jobs, ``main``), :mod:`.pool` (the pairs' scheduler),
:mod:`.zygote` (forks the pairs; a pair's process and verdict), :mod:`.integrity`
(unittest snapshot, audit hook), :mod:`.containment` (rlimits, ``/proc``, forking),
:mod:`.asserts` (CodeT checks), :mod:`.evalplus_jobs` (the evalplus job kinds, with
:mod:`.evalplus_check`, the comparison rules, and :mod:`.evalplus_expected`, the
canonical solutions' outputs), :mod:`.warmup`, :mod:`.output`, :mod:`.common`.

Input (stdin): ``MAGIC`` + 8-byte big-endian length + that many bytes of
zlib-compressed JSON ``{"jobs": [...], "texts": [...], "limits": {...}, "parallel": K}``.
No EOF is needed. ``texts`` holds each distinct code text once; jobs refer to it by
index (a plain string is accepted too).

Output (stdout): one JSON line per unittest job and per assert check, in completion
order::

    {"key", "outcome", "tests_run", "tests_passed", "duration_ms", "detail"}

(an ``evalplus_expected`` job's line also has a ``value``: the outputs), then a final
``{"done": true, "results": N, "cpu_s": S}`` line (S: CPU seconds used by the runner
and every process it reaped). Outcomes: pass, fail, error, timeout, crash,
sandbox_error (the runner itself failed on that job).

Job kinds:

- ``unittest`` (CodeRM): ``{"key", "solution", "test"}`` (the module is solution +
  two newlines + test) or ``{"key", "code"}``, with ``time_limit_s``, ``kill_after_s``,
  an optional ``adaptive`` limit and an optional ``"globals": "coderm-ref"``. Up to K
  pairs run at once, each in a fresh process forked from a warmed :class:`Zygote`,
  scheduled by :class:`PairPool` (early exit for solutions that fail alone, reruns of
  pairs killed from outside). The module runs as ``__coderm_pair__`` (strict), or
  with CodeRM's executor's globals (``unittest``, ``output``, ``locals_dict``, no
  ``__name__``). Pass iff the module finished within the limit and its ``result``
  (strict: module-level; coderm-ref: ``locals_dict['result']`` of the dict it was
  given) is a genuine ``unittest`` result without failures or errors
  (:func:`_verdict`: what a pair can and cannot forge is in sandbox/README.md).
- ``asserts`` (CodeT): a forked worker execs ``setup`` once, then runs the checks in
  order in the same namespace, reporting each through a pipe. A check that overruns
  its limit or kills the worker gets timeout/crash; a fresh worker then continues
  with the next check. Assert jobs run one after another, after the unittest pairs.
- ``evalplus_check`` (evalplus ground truth): a solution and the specs of its base and
  plus checks, run as an assert job whose setup loads the comparison code shipped
  here (:mod:`.evalplus_jobs`); in order with the assert jobs.
- ``evalplus_expected``: a canonical solution run on its inputs in a forked child,
  after every other job (:mod:`.evalplus_jobs`).

Time is *effective* time: wall-clock time minus the time the process spent runnable
but waiting for a CPU (``/proc/<pid>/schedstat``), i.e. what the pair would have
taken on a core of its own; so running more pairs than cores changes no verdict.

Containment per child: own session/process group, stdin/stdout/stderr on /dev/null,
every other descriptor closed, rlimits on address space, file size, core dumps, open
files and CPU time, ``oom_score_adj`` 1000, not dumpable (siblings cannot open its
``/proc`` files), an audit hook (:class:`Guard`) that refuses signals to processes
outside the pair. As PID 1 the runner also kills processes that escaped their pair's
process group and empties /tmp and /dev/shm whenever a pair left something there.
"""
