"""qgis_process geoembed:load OUTPUT_TYPE=int16: an Int16 file with band scale 1/127.5**2 whose values, as GDAL
unscales them, equal the Float32 output's; refused in one line for another product."""

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import assert_fails_cleanly, json_of, load_args, tile_31n

SCALE = 1 / 127.5**2


@pytest.fixture(scope="module")
def outputs(qgis_process, aef_mirror, aef_specs, tmp_path_factory):
    _, tile = tile_31n(aef_mirror, aef_specs, 2024)
    out = tmp_path_factory.mktemp("int16-cli")
    for output_type in ("float32", "int16"):
        json_of(qgis_process(*load_args(PRODUCT="aef", SOURCE=tile, OUTPUT_TYPE=output_type, OUTPUT=out / f"{output_type}.tif")))
    return out / "float32.tif", out / "int16.tif"


def test_int16_output_unscales_to_the_float32_output(outputs):
    floats, ints = (gdal.Open(str(path)) for path in outputs)
    band = ints.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Int16
    assert (band.GetScale(), band.GetOffset(), band.GetNoDataValue()) == (SCALE, 0.0, -32768)
    want = floats.ReadAsArray()
    stored = ints.ReadAsArray()
    valid = want[0] != -9999.0
    assert valid.any() and not valid.all()
    assert (stored[:, ~valid] == -32768).all()
    got = (stored[:, valid] * SCALE).astype(np.float32)  # what GDAL and QGIS compute: double term * scale
    np.testing.assert_array_equal(got.view(np.uint32), want[:, valid].view(np.uint32))


def test_int16_for_another_product_fails_in_one_line(qgis_process, aef_mirror, aef_specs, tmp_path):
    _, tile = tile_31n(aef_mirror, aef_specs, 2024)
    out = tmp_path / "out"
    completed = qgis_process(*load_args(PRODUCT="tessera", SOURCE=tile, OUTPUT_TYPE="int16", OUTPUT=out / "o.tif"))
    assert_fails_cleanly(completed, ["OUTPUT_TYPE=int16", "AlphaEarth"], out, tmp_path)
