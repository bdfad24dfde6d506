"""Benchmark geoembed:load's code path on one full-size AEF tile (8192 x 8192 x 64, int8, south-up).

Prints wall time and peak memory of the load beside a baseline measured in the same run: a
block-by-block GDAL read of the same tile (the least any loader must do). Each measurement runs
in a fresh process so peak RSS values are its own.

    .venv/bin/python bench/bench_load.py [--size 8192]
"""

import argparse
import json
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


def geoembed_load(tile, out):
    from geoembed.loaders.load import LoadRequest, run

    class Quiet:
        def info(self, message):
            pass

        warning = info

    run(LoadRequest(output=str(out), product="aef", source=str(tile)), log=Quiet())


def peak_rss_kib():
    """VmHWM of this process: unlike ru_maxrss it does not inherit the parent's peak across fork + exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def measure(kind, tile, out):
    """Run one measurement in a child process; returns (seconds, peak RSS in MiB)."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); import bench.bench_load as b; "
        f"t = time.perf_counter(); b.{kind}(*sys.argv[1:]); print(time.perf_counter() - t, b.peak_rss_kib())"
    )
    args = [sys.executable, "-c", code, str(tile)] + ([str(out)] if out else [])
    result = subprocess.run(args, capture_output=True, text=True, check=True, env={**os.environ, "GDAL_CACHEMAX": "256"})
    seconds, rss_kib = result.stdout.split()[-2:]
    return float(seconds), int(rss_kib) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
    work = ROOT / "build" / "bench"
    tile = work / f"2024/31N/xbenchbenchbench0-0000000000-0000000000-{args.size}.tiff"
    started = time.perf_counter()
    make_tile(tile, args.size)
    print(f"tile {args.size} x {args.size} x 64 int8 ready ({time.perf_counter() - started:.0f} s)")
    out = work / "load.tif"
    base_s, base_mb = measure("baseline_read", tile, None)
    load_s, load_mb = measure("geoembed_load", tile, out)
    out.unlink(missing_ok=True)
    report = {
        "baseline_gdal_block_read": {"seconds": round(base_s, 1), "peak_mib": round(base_mb)},
        "geoembed_load": {"seconds": round(load_s, 1), "peak_mib": round(load_mb)},
        "time_ratio": round(load_s / base_s, 2),
    }
    print(json.dumps(report, indent=2))
    print(
        f"load = {report['time_ratio']}x the time of a block-by-block GDAL read; peak memory {load_mb:.0f} MiB "
        f"(float32 of the whole tile would be {args.size * args.size * 64 * 4 / 2**30:.0f} GiB)"
    )


if __name__ == "__main__":
    main()
