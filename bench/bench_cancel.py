"""Benchmark how fast each algorithm stops after Cancel, run as QGIS runs it (a task in the task manager).

Each algorithm runs on a raw AEF tile (SIZE x SIZE x 64 int8, south-up) and is cancelled 0.2 s after its first
progress report, --runs times; the table gives the time from Cancel to the task's end (median and max) beside the
length of one uncancelled run of the same algorithm, measured in the same process just before. The target is
"about a second". tests/qgis/test_cancel_latency.py runs the same code with a bound no loaded machine breaks (5 s).

    .venv/bin/python bench/bench_cancel.py [--size 1536] [--runs 5] [--only NAME]
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402, F401 - puts the plugin (the repository root) on sys.path as `geoembed`

TARGET_S = 1.0


def start_qgis():
    """A headless QgsApplication with Processing and the GeoEmbed provider, in a throw-away profile."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = tempfile.mkdtemp(prefix="geoembed-bench-profile")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(os.path.join(app.pkgDataPath(), "python", "plugins"))
    from processing.core.Processing import Processing

    Processing.initialize()
    from geoembed import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    return app, plugin


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1536, help="tile side in pixels (default 1536, as the test)")
    parser.add_argument("--runs", type=int, default=5, help="cancelled runs of each algorithm (default 5)")
    parser.add_argument("--only", action="append", help="one algorithm (repeatable)")
    args = parser.parse_args()
    app, plugin = start_qgis()  # noqa: F841 - kept alive for the whole run
    from qgis.core import Qgis, QgsProject

    from tests.support.cancelling import ALGORITHMS, jobs, label_layer, run_task, train_model, write_big_tile

    work = Path(tempfile.mkdtemp(prefix="geoembed-bench-cancel"))
    spec, tile = write_big_tile(work / "mirror", args.size)
    labels = label_layer(spec)
    QgsProject.instance().addMapLayer(labels, False)
    model = train_model(tile, labels, work)
    print(
        f"QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}; tile {args.size} x {args.size} x 64 int8; "
        f"{args.runs} cancels per algorithm, 0.2 s after the first progress; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'algorithm':<13} {'uncancelled':>11} | {'stop median':>11} {'stop max':>9} | {'cancel at':>9} {'then':>5} | target")
    failed = False
    for name in args.only or ALGORITHMS:
        latencies, progress, gained = [], [], []
        out = work / "out"
        out.mkdir(exist_ok=True)
        whole = run_task(name, jobs(tile, labels, model, out)[name], cancel_after=None, wait=600)
        for path in out.iterdir():
            path.unlink()
        for _ in range(args.runs):
            run = run_task(name, jobs(tile, labels, model, out)[name])
            leftovers = sorted(p.name for p in out.iterdir())
            if run.finished_early or run.latency_s is None or leftovers:
                print(f"{name}: finished before Cancel, never stopped or left {leftovers}: {run}")
                failed = True
                break
            latencies.append(run.latency_s)
            progress.append(run.progress_at_cancel)
            gained.append(run.progress_at_end - run.progress_at_cancel)
        if not latencies:
            continue
        median, worst = statistics.median(latencies), max(latencies)
        ok = worst <= TARGET_S
        failed |= not ok
        print(
            f"{name:<13} {whole.length_s:9.1f} s | {median:9.2f} s {worst:7.2f} s | "
            f"{min(progress):3.0f}-{max(progress):3.0f} % {max(gained):+4.0f} % | {'PASS' if ok else 'FAIL'} (<= {TARGET_S:g} s)",
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    QgsProject.instance().removeMapLayer(labels.id())
    plugin.unload()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
