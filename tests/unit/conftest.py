"""Unit-tier fixtures and helpers for the multi-product loaders: every product fixture built once per session.

The helpers compute nothing about embeddings themselves: expectations come from the fixtures' own functions
(expected_at, stored_at, fsq_decode, chip/fragment lists); these helpers only run a load, read the GeoTIFF back
with GDAL and map points to output pixels.
"""

import math
import os

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import LoadRequest, run
from tests.fixtures.all_products import build_all
from tests.fixtures.fields import from_lonlat, to_lonlat
from tests.unit.helpers import QuietLog, assert_one_line, leftovers

NODATA = -9999.0


@pytest.fixture(scope="session")
def products(tmp_path_factory):
    """{product id: fixture build() dict} of every non-AEF product, written once under a session folder."""
    return build_all(tmp_path_factory.mktemp("products"))


class Loaded:
    """A finished load: the LoadResult, the log, the output read back with GDAL (array (bands, rows, cols))."""

    def __init__(self, result, log, path):
        self.result, self.log, self.path = result, log, path
        dataset = gdal.Open(str(path))
        assert dataset is not None, f"{path} does not open"
        self.geotransform = dataset.GetGeoTransform()
        self.width, self.height, self.count = dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount
        self.epsg = epsg_of(dataset)
        self.wkt = dataset.GetProjection()
        self.metadata = dataset.GetMetadata()
        self.band_names = [dataset.GetRasterBand(i + 1).GetDescription() for i in range(self.count)]
        self.nodata = [dataset.GetRasterBand(i + 1).GetNoDataValue() for i in range(self.count)]
        self.types = {gdal.GetDataTypeName(dataset.GetRasterBand(i + 1).DataType) for i in range(self.count)}
        array = dataset.ReadAsArray()
        self.values = array[np.newaxis] if array.ndim == 2 else array
        dataset = None

    @property
    def crs(self):
        return f"EPSG:{self.epsg}"

    def pixel_of(self, x, y):
        """(row, col) of the output pixel containing (x, y) in the output CRS; None outside the raster."""
        c, a, _, f, _, e = self.geotransform
        col, row = math.floor((x - c) / a), math.floor((y - f) / e)
        return (row, col) if 0 <= row < self.height and 0 <= col < self.width else None

    def at_lonlat(self, lon, lat):
        """The vector (bands,) of the output pixel containing lon/lat, or None outside the raster."""
        x, y = from_lonlat(self.crs, lon, lat)
        cell = self.pixel_of(x, y)
        return None if cell is None else self.values[:, cell[0], cell[1]]

    def centre_lonlat(self, row, col):
        """lon/lat of an output pixel centre."""
        c, a, _, f, _, e = self.geotransform
        lon, lat = to_lonlat(self.crs, c + a * (col + 0.5), f + e * (row + 0.5))
        return float(lon), float(lat)

    def is_nodata(self, vector):
        return bool(np.all(vector == NODATA))


def epsg_of(dataset):
    srs = dataset.GetSpatialRef()
    assert srs is not None, "output has no CRS"
    srs = srs.Clone()
    srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None)
    return int(code) if code else None


def load(folder, name, **request):
    """Run one load into folder/name with a quiet log; returns a Loaded."""
    log = QuietLog()
    out = os.path.join(str(folder), name)
    result = run(LoadRequest(output=out, **request), log=log)
    assert os.path.isfile(out)
    return Loaded(result, log, out)


def load_error(folder, **request):
    """run() must raise a one-line GeoEmbedError and leave nothing behind in folder; returns the message."""
    os.makedirs(str(folder), exist_ok=True)
    before = leftovers(folder)
    out = os.path.join(str(folder), "refused.tif")
    with pytest.raises(GeoEmbedError) as info:
        run(LoadRequest(output=out, **request), log=QuietLog())
    message = assert_one_line(info.value)
    assert not os.path.exists(out), "an error left the output file"
    assert leftovers(folder) == before, f"an error left files behind: {sorted(set(leftovers(folder)) - set(before))}"
    return message


def assert_vector(actual, expected, where, atol=1e-6):
    """An output vector equals a fixture's expected vector (None = nodata)."""
    if expected is None:
        assert np.all(actual == NODATA), f"{where}: expected nodata, got {actual[:4]}..."
    else:
        expected = np.asarray(expected, dtype=np.float64)
        assert actual.shape == expected.shape, f"{where}: {actual.shape} bands, expected {expected.shape}"
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=atol, err_msg=str(where))
