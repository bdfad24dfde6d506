"""Helpers of the end-to-end tier: reading qgis_process output and the rasters it writes."""

import json
import os

import numpy as np
import pytest

BANDS = [f"A{i:02d}" for i in range(64)]  # AEF's band names
NODATA = -9999.0


def output_of(completed):
    """stdout and stderr of a run, as one text."""
    return f"{completed.stdout}\n{completed.stderr}"


def json_of(completed):
    """The JSON document `qgis_process.bin --json run` prints; fails the test with the run's output if absent."""
    assert completed.returncode == 0, f"exit code {completed.returncode}:\n{output_of(completed)}"
    try:
        return json.loads(completed.stdout)
    except ValueError:
        pytest.fail(f"no JSON on stdout:\n{output_of(completed)}")


def assert_fails_cleanly(completed, words, out, tmp_path):
    """A run that failed as a user should see it: one line with all `words`, no traceback, nothing in `out` and no
    partial file under tmp_path."""
    text = output_of(completed)
    assert completed.returncode != 0, text
    lines = [line for line in text.splitlines() if all(word.lower() in line.lower() for word in words)]
    assert lines, f"no line with {words} in:\n{text}"
    assert "Traceback" not in text, text
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())
    assert leftovers(tmp_path) == []


def load_args(**params):
    """`--json run geoembed:load -- KEY=value ...` (values passed as single argv items: no shell quoting)."""
    return ["--json", "run", "geoembed:load", "--", *(f"{key}={value}" for key, value in params.items())]


def pixel_at(path, lon, lat):
    """All band values (float64 array) of the output pixel containing lon/lat, and the raster's EPSG code."""
    from osgeo import gdal, osr
    from pyproj import Transformer

    dataset = gdal.Open(str(path))
    srs = osr.SpatialReference(wkt=dataset.GetProjection())
    srs.AutoIdentifyEPSG()
    epsg = int(srs.GetAuthorityCode(None))
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    col, row = int(np.floor((x - x0) / dx)), int(np.floor((y - y0) / dy))
    assert 0 <= col < dataset.RasterXSize and 0 <= row < dataset.RasterYSize, f"({lon}, {lat}) is outside {path}"
    values = dataset.ReadAsArray(col, row, 1, 1)
    return np.asarray(values, dtype=np.float64).reshape(-1), epsg


def leftovers(folder):
    """Names in folder that look like temporary (partial) outputs."""
    return sorted(name for name in os.listdir(folder) if "partial" in name.lower()) if os.path.isdir(folder) else []


def tile_31n(aef_mirror, aef_specs, year):
    """(spec, raw path) of the fixture's 31N tile of `year` with a nodata box."""
    spec = next(s for s in aef_specs if s.year == year and s.zone == "31N" and s.nodata_boxes)
    return spec, aef_mirror / "v1" / "annual" / spec.relative_path


def write_embedding(path, values, tile, product="aef", names=None, year=None):
    """A GeoEmbed-style Float32 GeoTIFF of values (bands, rows, cols) on the tile's 10 m grid (GEOEMBED_YEAR if given)."""
    from osgeo import gdal, osr

    names = names or BANDS[: values.shape[0]]
    rows, cols = values.shape[1:]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, values.shape[0], gdal.GDT_Float32)
    dataset.SetGeoTransform((tile.x0, 10.0, 0.0, tile.y0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(tile.spec.epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": product, **({"GEOEMBED_YEAR": str(year)} if year else {})})
    for index in range(values.shape[0]):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(names[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index].astype(np.float32))
    dataset = None
    return path
