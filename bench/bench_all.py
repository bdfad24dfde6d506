"""Every speed, memory and scale target of the benches in one run: each bench N times, the fastest run of each figure.

Runs bench_load, bench_analysis, bench_classify (the fast methods over the whole tile, kNN and the tree methods over
its first rows), bench_methods_accuracy (once), bench_interactive and bench_cluster, each --runs times (default 3),
and prints for every line that carries a target the run with the fastest time (that run's baseline, measured in the
same process tree just before, is the one it is compared to), the spread of the times over the runs, and its
verdict; lines marked INFO (a figure without a target) likewise; memory lines keep the highest
peak. The last line says whether every target was met.

    .venv/bin/python bench/bench_all.py [--size 4096] [--view-size 8192] [--runs 3]

bench_analysis.py --size SIZE makes the tiles the others read (once, then they are reused).
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECONDS = re.compile(r"(\d+(?:\.\d+)?) s\b")
MIB = re.compile(r"(\d+) MiB")


def benches(size, view_size, cluster_size, knn_rows, forest_rows):
    """(label, argv, every run?) of every bench. The panel's first view is timed three times within its one run (its
    load of a whole tile, the baseline, is long); sampling's baseline is a slow per-point loop, run once."""
    classify = ["bench_classify.py", "--size", str(size), "--only"]
    return [
        ("load", ["bench_load.py", "--size", str(size)], True),
        ("analysis", ["bench_analysis.py", "--size", str(size), "--only", "similarity"], True),
        ("analysis", ["bench_analysis.py", "--size", str(size), "--only", "aggregate"], True),
        ("analysis", ["bench_analysis.py", "--size", str(size), "--only", "sample"], False),
        ("classify", [*classify, "nearest_centroid"], True),
        ("classify", [*classify, "logistic_regression"], True),
        ("classify", [*classify, "knn", "--rows", str(knn_rows)], True),
        ("classify", [*classify, "random_forest", "--rows", str(forest_rows)], True),
        ("classify", [*classify, "gradient_boosting", "--rows", str(forest_rows)], True),
        ("classify", [*classify, "neural_network"], True),
        ("accuracy", ["bench_methods_accuracy.py", "--size", str(size)], False),
        ("interactive", ["bench_interactive.py", "--size", str(view_size)], False),
        ("cluster", ["bench_cluster.py", "--size", str(cluster_size)], True),
    ]


def run(argv):
    """The bench's output lines; its failure stops the run with its error."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / argv[0]), *argv[1:]], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout.splitlines()


def figure_lines(lines):
    """{key: line} of the lines that carry a verdict (or INFO: a figure without a target); the key is the text before
    the line's first figure."""
    found = {}
    for line in lines:
        if not re.search(r"\b(PASS|FAIL|INFO)\b", line):
            continue
        key = re.split(r"\s+\d", line, maxsplit=1)[0].strip()
        found[key] = line
    return found


def seconds_of(line):
    match = SECONDS.search(line)
    return float(match.group(1)) if match else None


def summary(key, lines):
    """The line to report for one figure over its runs, with the spread of its times."""
    if key.startswith("memory"):
        return max(lines, key=lambda line: int(MIB.search(line).group(1)))
    timed = [(seconds_of(line), line) for line in lines if seconds_of(line) is not None]
    if not timed:
        return lines[-1]
    fastest, line = min(timed)
    slowest = max(seconds for seconds, _ in timed)
    if len(timed) == 1:
        return line
    return f"{line}  [fastest of {len(timed)}; spread {fastest:.2f}-{slowest:.2f} s]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="tile side of load, analysis and classify (default 4096)")
    parser.add_argument("--view-size", type=int, default=8192, help="tile side of the panel's first view (default 8192)")
    parser.add_argument("--cluster-size", type=int, default=2048, help="tile side of the 4-tile cluster region")
    parser.add_argument("--knn-rows", type=int, default=512, help="rows of the tile kNN classifies (default 512)")
    parser.add_argument("--forest-rows", type=int, default=256, help="rows the tree methods classify (default 256)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every bench (default 3)")
    parser.add_argument("--only", action="append", help="one bench label (load, analysis, classify, interactive, cluster)")
    args = parser.parse_args()
    jobs = [
        job
        for job in benches(args.size, args.view_size, args.cluster_size, args.knn_rows, args.forest_rows)
        if not args.only or job[0] in args.only
    ]
    print(f"{os.cpu_count()} cores; load average at the start {os.getloadavg()[0]:.2f}", flush=True)
    collected = {}
    started = time.perf_counter()
    for number in range(1, args.runs + 1):
        for label, argv, every_run in jobs:
            if number > 1 and not every_run:
                continue
            for key, line in figure_lines(run(argv)).items():
                collected.setdefault((label, key), []).append(line)
        print(f"run {number} of {args.runs} done ({time.perf_counter() - started:.0f} s)", flush=True)
    reported = [(label, summary(key, lines)) for (label, key), lines in collected.items()]
    for label, line in reported:
        print(f"{label:<12} {line}")
    failed = [line for _, line in reported if re.search(r"\bFAIL\b", line)]
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print("every target met" if not failed else f"{len(failed)} target(s) missed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
