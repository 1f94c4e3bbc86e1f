"""What one fork costs in the sandbox: the part of the per-pair overhead no runner design
that gives every pair a fresh process can avoid.

Runs a script in the sandbox image (``python3 -I -S``, the runner's interpreter) that
imports the runner and warms it up as the zygote does, then forks N children that exit
at once, and prints the CPU the children and the forking process used per fork, with
the runner's heap as it is and with a ballast of resident memory (a fork copies the
page tables of every resident page, and each child's exit unmaps them):

    .venv/bin/python -m bench.fork_cost [--forks 400] [--ballast-mb 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from shared.settings import ExecutorSettings

SCRIPT = """
import gc, os, resource, sys, time
sys.path.insert(0, "/opt/coderm")
import runner
runner.warm_up()
gc.freeze()

def usage(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_minflt

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0

def forks(label, n):
    child0, faults0 = usage(resource.RUSAGE_CHILDREN)
    parent0, _ = usage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    wall = (time.perf_counter() - start) / n * 1e3
    child1, faults1 = usage(resource.RUSAGE_CHILDREN)
    parent1, _ = usage(resource.RUSAGE_SELF)
    child, parent = (child1 - child0) / n * 1e3, (parent1 - parent0) / n * 1e3
    print(f"{label:34s} {rss_mb():6.1f} MiB  child {child:5.2f} ms  forking process "
          f"{parent:5.2f} ms  total {child + parent:5.2f} ms  wall {wall:5.2f} ms  "
          f"faults/child {(faults1 - faults0) / n:4.0f}", flush=True)

n, ballast_mb = int(sys.argv[1]), int(sys.argv[2])
forks("warmed runner", n)
ballast = b"\\x01" * (ballast_mb << 20)
forks(f"warmed runner + {ballast_mb} MiB resident", n)
"""


def main(argv: list[str]) -> int:
    """Run the measurement in the sandbox image and print its lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forks", type=int, default=400)
    parser.add_argument("--ballast-mb", type=int, default=30)
    args = parser.parse_args(argv)
    image = ExecutorSettings().sandbox.image
    command = [
        *("docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", "python3"),
        *(image, "-I", "-S", "-", str(args.forks), str(args.ballast_mb)),
    ]
    result = subprocess.run(command, input=SCRIPT.encode(), capture_output=True, check=False)
    sys.stdout.write(result.stdout.decode())
    sys.stderr.write(result.stderr.decode())
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
