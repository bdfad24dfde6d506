"""Helpers of the end-to-end tier: reading qgis_process output and the rasters it writes."""

import json
import os

import numpy as np
import pytest


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
