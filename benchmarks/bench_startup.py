"""Start-up time of the command line: ``postmix --version`` and ``postmix --help`` against two
named baselines, measured in one run, each command run ``--runs`` times in turn: the median wall
time, and the median CPU time of the child (user + system), which a busy shared machine
disturbs far less than wall time.

    python benchmarks/bench_startup.py              # 10 runs each
    python benchmarks/bench_startup.py --runs 30 --old-tree /tmp/old   # + an older checkout's CLI

    (an older checkout: mkdir /tmp/old && git archive 9b177d5 | tar -x -C /tmp/old)

python    ``python -c pass``: the interpreter alone, the floor no command can go under.
eager     ``import`` of every verb module at start (what the CLI did before its groups became
          lazy: datasets, pyarrow, numba and the config models load before any argument is read).
postmix   ``python -m postmix.cli --version`` / ``--help``: only the root group is imported; a
          stage's module loads when that stage is invoked.
old       (``--old-tree``) the same two commands from another source tree, e.g. the commit before
          the CLI was rebuilt on the config models.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

EAGER = "import " + ", ".join(
    f"postmix.cli.{name}" for name in ("curate", "curate_synth", "judge", "mix", "train")
)
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "eager verb imports": [sys.executable, "-c", EAGER],
    "postmix --version": [sys.executable, "-m", "postmix.cli", "--version"],
    "postmix --help": [sys.executable, "-m", "postmix.cli", "--help"],
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(runs: int, old_tree: str | None) -> dict[str, tuple[float, float]]:
    commands = {name: (command, None) for name, command in COMMANDS.items()}
    if old_tree:  # run from inside it too: ``-m`` puts the working folder first on sys.path
        for flag in ("--version", "--help"):
            command = [sys.executable, "-m", "postmix.cli", flag]
            commands[f"old postmix {flag}"] = (command, old_tree)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for command, cwd in commands.values():  # one warm-up each: the first run pays for disk reads
        subprocess.run(command, capture_output=True, check=True, cwd=cwd)
    for _ in range(runs):  # interleaved, so a busy moment on a shared machine hits every command
        for name, (command, cwd) in commands.items():
            start, start_cpu = time.perf_counter(), _cpu()
            subprocess.run(command, capture_output=True, check=True, cwd=cwd)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(_cpu() - start_cpu)
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in commands
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--old-tree", help="Another source tree whose CLI is timed too.")
    args = parser.parse_args()
    medians = measure(args.runs, args.old_tree)
    floor, eager = medians["python -c pass"], medians["eager verb imports"]
    print(f"median of {args.runs} runs each; load average {os.getloadavg()[0]:.1f}")
    header = ("command", "wall s", "cpu s", "x python", "x eager")
    print(f"{header[0]:22s} {header[1]:>7s} {header[2]:>6s} {header[3]:>9s} {header[4]:>8s}")
    for name, (seconds, cpu) in medians.items():
        ratios = f"{seconds / floor[0]:9.2f} {seconds / eager[0]:8.2f}"
        print(f"{name:22s} {seconds:7.3f} {cpu:6.3f} {ratios}  (ratios of wall time)")


if __name__ == "__main__":
    main()
