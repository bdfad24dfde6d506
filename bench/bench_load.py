"""Benchmark geoembed:load's code path on one full-size AEF tile (8192 x 8192 x 64, int8, south-up).

Prints, beside a baseline measured in the same run (a block-by-block GDAL read of the same tile, the least any
loader must do), with the issue's targets:
  load float32   a whole tile to Float32 (the default)                       <= 3x the read
  load int16     OUTPUT_TYPE=int16 (q*|q| with band scale 1/127.5^2)         <= 3x the read
  load before    Float32 as written before this run's write path (for comparison): no background producer (each block
                 read and de-quantised only after the previous one is handed to GDAL), blocks north to south (source
                 tiles decompressed 1.5x), the previous in-place float32 de-quantiser
  load pred3     (--pred3) Float32 with the floating-point predictor (PREDICTOR=3) that embedding outputs had before
  sizes on disk; peak memory of every run < 1.5 GB (1536 MiB)
Each measurement runs in a fresh process (GDAL_CACHEMAX=256 MB), so its peak RSS (VmHWM) is its own; CPU seconds
(user + system, all threads) are printed too, being less moved by other work on the machine than wall time, and the
load average when each run ended (the machine has 2 cores: above 2, other work takes some of them).
The tile is bench_analysis.py's realistic one (build/bench/analysis-SIZE/) when it exists, else one made here.

    .venv/bin/python bench/bench_load.py [--size 8192] [--repeat N] [--pred3]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tests  # noqa: E402, F401 - puts the plugin (the repository root) on sys.path as `geoembed`


def make_tile(path, size):
    """A south-up int8 64-band tile, tiled 1024 and ZSTD-compressed like the published COGs."""
    import numpy as np
    from osgeo import gdal, osr

    from geoembed.loaders.products.aef import quantize
    from tests.fixtures.aef import embedding_at

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lon, lat = np.meshgrid(np.linspace(5.0, 5.2, 512), np.linspace(45.0, 45.2, 512))
    pattern = quantize(embedding_at(lon, lat))  # (64, 512, 512), repeated over the tile
    pattern[:, :40, :40] = -128
    options = ["TILED=YES", "BLOCKXSIZE=1024", "BLOCKYSIZE=1024", "INTERLEAVE=BAND", "COMPRESS=ZSTD", "BIGTIFF=YES"]
    int8_type = getattr(gdal, "GDT_Int8", None)
    if int8_type is None:
        int8_type, options = gdal.GDT_Byte, options + ["PIXELTYPE=SIGNEDBYTE"]
    tmp = path.with_suffix(".partial")
    dataset = gdal.GetDriverByName("GTiff").Create(str(tmp), size, size, 64, int8_type, options)
    dataset.SetGeoTransform((600000.0, 10.0, 0.0, 4980000.0, 0.0, 10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset.SetProjection(srs.ExportToWkt())
    for band_index in range(64):
        band = dataset.GetRasterBand(band_index + 1)
        band.SetNoDataValue(-128)
        row = np.tile(pattern[band_index], (1, size // 512))
        for y in range(0, size, 512):
            band.WriteArray(row, 0, y)
    dataset = None
    tmp.rename(path)


def baseline_read(tile):
    from osgeo import gdal

    dataset = gdal.Open(str(tile))
    for y in range(0, dataset.RasterYSize, 512):
        for x in range(0, dataset.RasterXSize, 512):
            dataset.ReadAsArray(x, y, min(512, dataset.RasterXSize - x), min(512, dataset.RasterYSize - y))


def geoembed_load(tile, out, output_type="float32", predictor="", before=""):
    from geoembed.loaders import load
    from geoembed.loaders.load import LoadRequest, run
    from geoembed.loaders.products import aef
    from geoembed.loaders.raster import writer

    class Quiet:
        def info(self, message):
            pass

        warning = info

    if predictor:
        writer.EMBEDDING_PREDICTOR = int(predictor)
    if before:
        produced = writer._produced
        writer._produced = lambda produce, windows, ahead, is_cancelled=None: produced(produce, windows, False, is_cancelled)
        load.write_order = lambda raster: None
        aef.dequantize = previous_dequantize
    run(LoadRequest(output=str(out), product="aef", source=str(tile), output_type=output_type), log=Quiet())


def previous_dequantize(q):
    """The de-quantiser before this change (the same float32 values, in more passes and a float temporary)."""
    import numpy as np

    from geoembed.loaders.raster.scaled_int16 import TERM_DIVISOR

    values = q.astype(np.float32)
    values *= np.abs(values)
    values /= TERM_DIVISOR
    return values


def cpu_seconds():
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bytes_read():
    """Bytes this process has read from files (/proc/self/io rchar): a source tile decompressed twice is read twice."""
    with open("/proc/self/io", encoding="ascii") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def peak_rss_kib():
    """VmHWM of this process: unlike ru_maxrss it does not inherit the parent's peak across fork + exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def measure(kind, *args, repeat=1):
    """Run one code path in fresh child processes; returns (fastest seconds, its CPU seconds, highest peak MiB, MiB read
    from files by the fastest run)."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); import bench.bench_load as b; "
        f"r = b.bytes_read(); c = b.cpu_seconds(); t = time.perf_counter(); b.{kind}(*sys.argv[1:]); "
        "print(time.perf_counter() - t, b.cpu_seconds() - c, b.peak_rss_kib(), b.bytes_read() - r)"
    )
    runs = []
    for _ in range(repeat):
        argv = [sys.executable, "-c", code] + [str(a) for a in args]
        result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "GDAL_CACHEMAX": "256"})
        if result.returncode:
            print(result.stderr[-4000:], file=sys.stderr)
        result.check_returncode()
        seconds, cpu, rss_kib, read = result.stdout.split()[-4:]
        runs.append((float(seconds), float(cpu), int(rss_kib) / 1024, int(read) / 2**20))
    fastest = min(runs)
    return fastest[0], fastest[1], max(run[2] for run in runs), fastest[3]


def bench_tile(size):
    """bench_analysis.py's realistic tile of this size when it exists (do not generate 8192 ones here), else ours."""
    from bench.bench_analysis import tile_paths

    realistic = tile_paths(size)[0]
    if realistic.exists():
        return realistic
    tile = ROOT / "build" / "bench" / f"2024/31N/xbenchbenchbench0-0000000000-0000000000-{size}.tiff"
    make_tile(tile, size)
    return tile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing (the fastest is kept; default 1)")
    parser.add_argument("--pred3", action="store_true", help="also time Float32 with the floating-point predictor")
    args = parser.parse_args()
    started = time.perf_counter()
    tile = bench_tile(args.size)
    out = ROOT / "build" / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"tile {tile.name}: {args.size} x {args.size} x 64 int8, {tile.stat().st_size / 2**20:.0f} MiB on disk "
        f"({time.perf_counter() - started:.0f} s); load average {os.getloadavg()[0]:.2f} (other work skews the times)"
    )
    read_s, read_cpu, read_mib, read_bytes = measure("baseline_read", tile, repeat=args.repeat)
    print(
        f"{'read':<14} {read_s:8.1f} s  cpu {read_cpu:6.1f} s  peak {read_mib:5.0f} MiB | block-by-block GDAL read (baseline)"
        f"  read from disk {read_bytes:.0f} MiB  load {os.getloadavg()[0]:.1f}"
    )
    rows = [("read", read_mib)]
    sizes = {}
    runs = [("load float32", ("float32",), 3.0), ("load int16", ("int16",), 3.0), ("load before", ("float32", "", "1"), None)]
    if args.pred3:
        runs.append(("load pred3", ("float32", "3"), None))
    for name, extra, target in runs:
        path = out / f"load-{name.split()[-1]}.tif"
        seconds, cpu, mib, mib_read = measure("geoembed_load", tile, path, *extra, repeat=args.repeat)
        sizes[name] = path.stat().st_size
        path.unlink()
        rows.append((name, mib))
        verdict = "(none)" if target is None else f"<= {target:g}x    {'PASS' if seconds <= target * read_s else 'FAIL'}"
        print(
            f"{name:<14} {seconds:8.1f} s  cpu {cpu:6.1f} s  peak {mib:5.0f} MiB | read {read_s:8.1f} s | "
            f"ratio {seconds / read_s:6.2f}x (cpu {cpu / read_cpu:5.2f}x)  target {verdict}  "
            f"cores used {cpu / seconds:.2f}  read from disk {mib_read:.0f} MiB  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    raw = args.size * args.size * 64
    for name, size in sizes.items():
        share = f"{size / (4 * raw):.0%} of raw Float32, {size / raw:.2f} B/value"
        print(f"size {name:<14} {size / 2**20:8.0f} MiB on disk ({share})")
    for name, mib in rows:
        print(f"memory {name:<14} {mib:5.0f} MiB  target < 1536 MiB  {'PASS' if mib < 1536 else 'FAIL'}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
