"""What a fresh process per pair costs in the sandbox: the part of the per-pair cost no
runner design that gives every pair a fresh process can avoid.

Runs scripts in the sandbox image (``python3 -I -S``, the runner's interpreter) that
import the runner and warm it up as the zygote does, then

1. fork N children that exit at once, and print the CPU the children and the forking
   process used per fork, with the runner's heap as it is and with a ballast of
   resident memory (a fork copies the page tables of every resident page, and each
   child's exit unmaps them);
2. fork a child per real pair module of the executor benchmark's set (every k-th
   distinct module, ``--pairs`` of them) that runs the module twice and reports each
   run's time and page faults: the first run pays a copy of every page it writes
   that it shares with the forking process (reference counts, allocator state,
   caches), the second does not. Also what one such page copy costs here;
3. drive the runner's real zygote through its control socket with the real pairs of
   the first ``--zygote-problems`` problems (solution and test texts compiled once,
   as in a batch), three in flight as the scheduler keeps them, and print what the
   zygote itself spends a fork, next to a bare fork loop from the same warmed heap:
   every page the forking process writes while a child still shares it is copied.

    .venv/bin/python -m bench.fork_cost [--forks 400] [--ballast-mb 30] [--pairs 400]
        [--zygote-problems 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench.pair_set import PairInput, build_pairs
from shared.settings import ExecutorSettings

PRELUDE = """
import gc, json, os, resource, signal, statistics, sys, time
sys.path.insert(0, "/opt/coderm")
import coderm_runner.batch  # the whole runner, as the zygote has it
from coderm_runner.warmup import warm_up
warm_up()
gc.freeze()

def usage(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_minflt
"""

FORK_LOOP = """
import os, resource, time

def fork_loop(n, keep=1, alive_s=0.0):
    # fork n children, at most `keep` alive at once, each exiting after alive_s; per
    # fork: CPU (ms) and page faults of the children and of this process, wall (ms)
    own, kids = resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN
    self0, kids0 = resource.getrusage(own), resource.getrusage(kids)
    start, alive = time.perf_counter(), set()
    for _ in range(n):
        while len(alive) >= keep:
            alive.discard(os.waitpid(-1, 0)[0])
        pid = os.fork()
        if pid == 0:
            if alive_s:
                time.sleep(alive_s)
            os._exit(0)
        alive.add(pid)
    while alive:
        alive.discard(os.waitpid(-1, 0)[0])
    wall = (time.perf_counter() - start) / n * 1e3
    self1, kids1 = resource.getrusage(own), resource.getrusage(kids)
    def cpu(a, b):
        return (b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime) / n * 1e3
    return {"child": cpu(kids0, kids1), "child_faults": (kids1.ru_minflt - kids0.ru_minflt) / n,
            "parent": cpu(self0, self1), "parent_faults": (self1.ru_minflt - self0.ru_minflt) / n,
            "wall": wall}
"""

FORKS = """
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0

def forks(label, n):
    f = fork_loop(n)
    print(f"{label:34s} {rss_mb():6.1f} MiB  child {f['child']:5.2f} ms  forking process "
          f"{f['parent']:5.2f} ms  total {f['child'] + f['parent']:5.2f} ms  "
          f"wall {f['wall']:5.2f} ms  faults/child {f['child_faults']:4.0f}", flush=True)

n, ballast_mb = int(sys.argv[1]), int(sys.argv[2])
forks("warmed runner", n)
ballast = b"\\x01" * (ballast_mb << 20)
forks(f"warmed runner + {ballast_mb} MiB resident", n)
"""

PAIRS = """
class Stop(BaseException):
    pass

def stop(_signum, _frame):
    raise Stop()

def run_once(code):
    faults0, start = usage(resource.RUSAGE_SELF)[1], time.perf_counter()
    try:
        exec(code, {"__name__": "__main__"})
    except BaseException:
        pass
    return (time.perf_counter() - start) * 1e3, usage(resource.RUSAGE_SELF)[1] - faults0

def in_child(body):
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, 1.0, 0.05)
        resource.setrlimit(resource.RLIMIT_CPU, (3, 3))
        try:
            os.write(writer, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(writer)
    data = b"".join(iter(lambda: os.read(reader, 1 << 16), b""))
    os.close(reader)
    os.waitpid(pid, 0)
    return json.loads(data) if data else None

codes = []
for text in json.load(sys.stdin):
    try:
        codes.append(compile(text, "<coderm>", "exec"))
    except SyntaxError:
        pass
shared = bytearray(4096 * 2000)
for offset in range(0, len(shared), 4096):
    shared[offset] = 1
gc.collect()
gc.freeze()

def copy_pages():
    start, faults0 = time.perf_counter(), usage(resource.RUSAGE_SELF)[1]
    for offset in range(0, len(shared), 4096):
        shared[offset] = 2
    return (time.perf_counter() - start) * 1e6, usage(resource.RUSAGE_SELF)[1] - faults0

us, faults = in_child(copy_pages)
page_us = us / max(faults, 1)
print(f"one page copy on a child's first write: {page_us:.2f} us ({faults} pages)")
rows = [in_child(lambda c=c: [run_once(c), run_once(c)]) for c in codes]
rows = [r for r in rows if r and r[0][0] < 500]  # the pairs that time out are left out
first, second = [r[0] for r in rows], [r[1] for r in rows]
def line(label, runs):
    ms, faults = [m for m, _ in runs], [f for _, f in runs]
    median, mean = statistics.median, statistics.mean
    print(f"{label:28s} median {median(ms):5.2f} ms, mean {mean(ms):5.2f} ms;"
          f" page faults median {median(faults):4.0f}, mean {mean(faults):4.0f}")
print(f"{len(rows)} pair modules that finish under 0.5 s, each run twice in its own child:")
line("first run (as a pair runs)", first)
line("second run, same child", second)
extra = statistics.mean(f for _, f in first) - statistics.mean(f for _, f in second)
print(f"first-run faults beyond the second's x {page_us:.2f} us = {extra * page_us / 1e3:.2f} ms"
      f" of the mean {statistics.mean(m for m, _ in first):.2f} ms a pair")
"""


ZYGOTE = """
import json, select, signal, sys
sys.path.insert(0, "/opt/coderm")
from coderm_runner import batch

KEEP, DEADLINE_S = 3, 2.0
stdin = json.load(sys.stdin)
texts, pairs = stdin["texts"], stdin["pairs"]
link = batch.start_zygote()  # warmed, snapshot taken, zygote forked: as the runner does
link.load(texts, None)

def zygote_usage():
    with open(f"/proc/{link.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, int(fields[7])

def drive():
    # KEEP pairs in flight, as the scheduler keeps them; a pair is killed by its
    # RLIMIT_CPU of 1 s or, if it sleeps, here after DEADLINE_S
    sock, results = link.sock, link.results
    sent = done = forks = 0
    started = {}
    def request():
        nonlocal sent
        solution, test = pairs[sent]
        sock.send(b"%d 0 %016x 1 -1 %d %d" % (sent, sent, solution, test))
        sent += 1
    for _ in range(min(KEEP, len(pairs))):
        request()
    while done < len(pairs):
        select.select([sock.fileno(), results.fileno()], [], [], 0.05)
        now = time.monotonic()
        for pid in [p for p, t0 in started.items() if now - t0 > DEADLINE_S]:
            os.kill(pid, signal.SIGKILL)
            del started[pid]
        try:
            while True:
                results.recv(1 << 16)
        except BlockingIOError:
            pass
        try:
            while True:
                kind, first, rest = (sock.recv(1 << 16).split(b" ", 2) + [b""])[:3]
                if kind == b"S":
                    started[int(rest.split()[0])] = now
                    forks += 1
                    continue
                if kind == b"X":
                    started.pop(int(first), None)
                done += 1
                if sent < len(pairs):
                    request()
        except BlockingIOError:
            pass
    return forks

cpu0, faults0 = zygote_usage()
forks = drive()
cpu1, faults1 = zygote_usage()
link.stop()
print(f"the zygote in its loop ({len(pairs)} real pairs of {len(texts)} texts, {KEEP} at a time):"
      f" {(cpu1 - cpu0) / forks * 1e3:5.2f} ms of CPU and {(faults1 - faults0) / forks:4.0f}"
      f" page faults a fork ({forks} forks)", flush=True)

alive_s = 0.002
f = fork_loop(min(forks, 2000), KEEP, alive_s)
print(f"a bare fork loop from the same warmed heap (children alive {alive_s * 1e3:.1f} ms,"
      f" {KEEP} at a time): {f['parent']:5.2f} ms of CPU and {f['parent_faults']:4.0f}"
      f" page faults a fork", flush=True)
"""


def _in_image(script: str, args: list[str], stdin: bytes = b"") -> int:
    image = ExecutorSettings().sandbox.image
    command = [
        *("docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", "python3"),
        *(image, "-I", "-S", "-c", script, *args),
    ]
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    sys.stdout.write(result.stdout.decode())
    sys.stderr.write(result.stderr.decode())
    return result.returncode


def pair_modules(pairs: list[PairInput], count: int) -> list[str]:
    """Every k-th distinct module of the executor benchmark's set, ``count`` of them."""
    distinct = list(dict.fromkeys(p.code for p in pairs))
    step = max(1, len(distinct) // max(count, 1))
    return distinct[::step][:count]


def zygote_batch(pairs: list[PairInput], problems: int) -> bytes:
    """The pairs of the first ``problems`` problems of the set as a batch for the real
    zygote: each distinct solution and test text once, pairs as two text indices."""
    texts: dict[str, int] = {}
    indices: list[tuple[int, int]] = []
    tasks: list[str] = []
    for pair in pairs:
        if pair.task_id not in tasks:
            if len(tasks) == problems:
                break
            tasks.append(pair.task_id)
        solution = texts.setdefault(pair.solution, len(texts))
        indices.append((solution, texts.setdefault(pair.test, len(texts))))
    return json.dumps({"texts": list(texts), "pairs": indices}).encode()


def main(argv: list[str]) -> int:
    """Run the three measurements in the sandbox image and print their lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forks", type=int, default=400)
    parser.add_argument("--ballast-mb", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=400, help="0: skip the pair runs")
    parser.add_argument(
        "--zygote-problems", type=int, default=30, help="0: skip the zygote's own cost"
    )
    args = parser.parse_args(argv)
    status = _in_image(PRELUDE + FORK_LOOP + FORKS, [str(args.forks), str(args.ballast_mb)])
    pairs = build_pairs() if args.pairs > 0 or args.zygote_problems > 0 else []
    if status == 0 and args.pairs > 0:
        modules = json.dumps(pair_modules(pairs, args.pairs)).encode()
        status = _in_image(PRELUDE + PAIRS, [], modules)
    if status == 0 and args.zygote_problems > 0:
        status = _in_image(FORK_LOOP + ZYGOTE, [], zygote_batch(pairs, args.zygote_problems))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
