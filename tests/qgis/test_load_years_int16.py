"""geoembed:load with YEARS and OUTPUT_TYPE=int16: every year's file is an Int16 file of terms q*|q| with the band
scale 1/127.5^2, on the same grid as the Float32 YEARS run, and QGIS reads from it the Float32 run's values."""

import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsRasterLayer

from geoembed.loaders.raster.scaled_int16 import INT16_NODATA, INT16_SCALE

from .helpers import EXTENT, RUNNERS, error_message, provider_values

runners = pytest.mark.parametrize("runner", list(RUNNERS))


@pytest.fixture(scope="module")
def years_runs(provider_ready, index_file, tmp_path_factory):
    """{runner: {output type: (folder, results)}} of YEARS=2023,2024 from the index, once per runner and type."""
    runs = {}

    def run(runner, output_type):
        if (runner, output_type) not in runs:
            folder = tmp_path_factory.mktemp(f"years-{output_type}")
            parameters = {"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT, "YEARS": "2023,2024"}
            parameters.update({"OUTPUT_TYPE": output_type, "OUTPUT": str(folder / "aef.tif")})
            runs[runner, output_type] = folder, RUNNERS[runner](parameters)
        return runs[runner, output_type]

    return run


def layer_of(path):
    layer = QgsRasterLayer(str(path), os.path.basename(str(path)), "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    return layer


@runners
def test_every_year_is_written_as_scaled_int16(years_runs, runner):
    folder, results = years_runs(runner, "int16")
    assert results["OUTPUT_YEARS"] == [str(folder / "aef_2023.tif"), str(folder / "aef_2024.tif")]
    assert results["YEARS_LOADED"] == "2023,2024"
    for path, year in zip(results["OUTPUT_YEARS"], (2023, 2024)):
        dataset = gdal.Open(path)
        assert dataset.GetMetadataItem("GEOEMBED_YEAR") == str(year)
        assert "Int16" in dataset.GetMetadataItem("GEOEMBED_NOTES")
        for index in (1, 64):
            band = dataset.GetRasterBand(index)
            assert band.DataType == gdal.GDT_Int16
            assert (band.GetScale(), band.GetOffset(), band.GetNoDataValue()) == (INT16_SCALE, 0.0, INT16_NODATA)


@runners
def test_qgis_reads_the_float32_years_values_from_int16(years_runs, runner):
    _, floats = years_runs(runner, "float32")
    _, ints = years_runs(runner, "int16")
    for float_path, int_path in zip(floats["OUTPUT_YEARS"], ints["OUTPUT_YEARS"]):
        float_layer, int_layer = layer_of(float_path), layer_of(int_path)
        assert int_layer.extent() == float_layer.extent()
        assert (int_layer.width(), int_layer.height()) == (float_layer.width(), float_layer.height())
        for band in (1, 33, 64):
            expected = provider_values(float_layer, band)
            np.testing.assert_array_equal(provider_values(int_layer, band), expected)
            assert np.isfinite(expected).any()
        # GDAL with the scale applied: the same float32 values, nodata where the Float32 file has nodata
        terms = gdal.Open(int_path).ReadAsArray()
        values = gdal.Open(float_path).ReadAsArray()
        valid = terms != INT16_NODATA
        np.testing.assert_array_equal(valid, values != -9999.0)
        np.testing.assert_array_equal((terms[valid] * INT16_SCALE).astype(np.float32), values[valid])


def test_int16_years_of_another_product_is_refused_in_one_line(provider_ready, tile_2024_31n, tmp_path):
    _, tile = tile_2024_31n
    output = tmp_path / "out.tif"
    parameters = {"PRODUCT": "tessera", "SOURCE": str(tile.parent), "YEARS": "2023-2024", "OUTPUT_TYPE": "int16"}
    with pytest.raises(QgsProcessingException) as caught:
        RUNNERS["processing.run"]({**parameters, "OUTPUT": str(output)})
    message = error_message(caught.value)
    assert "\n" not in message.strip() and "int16" in message and "AlphaEarth" in message, message
    assert not list(tmp_path.iterdir())
