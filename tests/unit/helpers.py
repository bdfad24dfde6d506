"""Independent expectations for the unit tier: formulas written out here, not imported from geoembed."""

import os

import numpy as np
from osgeo import gdal
from pyproj import Transformer

from tests.fixtures.aef import embedding_at


def dequant_formula(codes):
    """Google's de-quantisation in float64: ((q / 127.5) ** 2) * sign(q)."""
    q = np.asarray(codes, dtype=np.float64)
    return ((q / 127.5) ** 2) * np.sign(q)


def quant_formula(values):
    """The inverse used by the fixture writer: round(sign(v) * sqrt(|v|) * 127.5), clipped to -127..127."""
    v = np.asarray(values, dtype=np.float64)
    return np.clip(np.round(np.sign(v) * np.sqrt(np.abs(v)) * 127.5), -127, 127)


def expected_at(lon, lat, year=2024):
    """What a loader must output at a lon/lat (64,), computed without geoembed's codec."""
    return dequant_formula(quant_formula(embedding_at(lon, lat, year)))


def raw_codes(path):
    """All bands of a tile as GDAL stores them (south-up for AEF), as int8."""
    dataset = gdal.Open(str(path))
    array = dataset.ReadAsArray()
    dataset = None
    return array.view(np.int8) if array.dtype == np.uint8 else array


def to_crs(epsg_or_crs, lon, lat):
    crs = epsg_or_crs if isinstance(epsg_or_crs, str) else f"EPSG:{epsg_or_crs}"
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)


def tile_path(mirror_root, spec):
    return mirror_root / "v1" / "annual" / spec.relative_path


def find_spec(specs, year, zone, yoff=0):
    return next(s for s in specs if s.year == year and s.zone == zone and s.yoff == yoff)


def leftovers(folder):
    """Every file name in folder (recursively), hidden ones included."""
    names = []
    for base, _dirs, files in os.walk(folder):
        names.extend(os.path.relpath(os.path.join(base, name), folder) for name in files)
    return sorted(names)


def partial_files(folder):
    return [name for name in leftovers(folder) if "partial" in name]


def assert_one_line(error):
    message = str(error)
    assert message.strip(), "empty error message"
    assert "\n" not in message and "\r" not in message, f"error is not one line: {message!r}"
    return message


def cancel_after(answers):
    """An is_cancelled that says no `answers` times, then yes (a Cancel clicked part-way through)."""
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > answers

    return cancelled


class QuietLog:
    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, message):
        self.infos.append(message)

    def warning(self, message):
        self.warnings.append(message)


class SpyTile:
    """Wraps a tile and records the (col, row, width, height) of every read()."""

    def __init__(self, tile):
        self.tile = tile
        self.crs, self.geotransform = tile.crs, tile.geotransform
        self.width, self.height, self.bounds = tile.width, tile.height, tile.bounds
        self.location = getattr(tile, "location", "spy")
        self.reads = []

    def read(self, col, row, width, height):
        self.reads.append((int(col), int(row), int(width), int(height)))
        return self.tile.read(col, row, width, height)

    def close(self):
        self.tile.close()


def spy_parquet_reads(monkeypatch):
    """Record every data read of pyarrow ParquetFile objects as (file name, method, row group, columns)."""
    import pyarrow.parquet as pq

    calls = []
    init = pq.ParquetFile.__init__

    def spy_init(self, source, *args, **kwargs):
        init(self, source, *args, **kwargs)
        self._spy_name = os.path.basename(str(source))

    def spy(method):
        original = getattr(pq.ParquetFile, method)

        def wrapper(self, *args, **kwargs):
            group = args[0] if args and method in ("read_row_group", "read_row_groups") else None
            columns = kwargs.get("columns", args[1] if len(args) > 1 else None)
            calls.append((getattr(self, "_spy_name", "?"), method, group, tuple(columns) if columns is not None else None))
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(pq.ParquetFile, "__init__", spy_init)
    for method in ("read_row_group", "read_row_groups", "read", "iter_batches"):
        monkeypatch.setattr(pq.ParquetFile, method, spy(method))
    return calls
