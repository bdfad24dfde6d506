"""geoembed:load OUTPUT_TYPE=int16 (AlphaEarth): QGIS shows the same values as the Float32 output wherever a user
looks - the layer's data type, identify, block reads (rendering), the raster calculator, Processing statistics - and
GeoEmbed's own algorithms compute the same results from it."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsPointXY,
    QgsProcessingException,
    QgsRasterLayer,
)

from geoembed.loaders.raster.scaled_int16 import INT16_SCALE
from geoembed.qgis_compat import IDENTIFY_VALUE

from .helpers import RUNNERS, error_message, settle

NODATA = -9999.0


def run(name, parameters):
    import processing

    return processing.run(f"geoembed:{name}", parameters)


@pytest.fixture(scope="module")
def loaded(provider_ready, tile_2024_31n, tmp_path_factory):
    """The 2024 31N tile (with a nodata box) loaded whole, as float32 and as int16."""
    spec, tile = tile_2024_31n
    folder = tmp_path_factory.mktemp("int16")
    paths = {}
    for output_type in ("float32", "int16"):
        paths[output_type] = folder / f"{output_type}.tif"
        run("load", {"PRODUCT": "aef", "SOURCE": str(tile), "OUTPUT_TYPE": output_type, "OUTPUT": str(paths[output_type])})
    layers = {key: QgsRasterLayer(str(path), key, "gdal") for key, path in paths.items()}
    assert all(layer.isValid() for layer in layers.values())
    yield {"spec": spec, "paths": paths, "layers": layers}
    layers.clear()  # the layers go before QGIS exits
    settle()


def block_values(layer, band):
    """(float32 values, nodata mask) of a whole band as QGIS's provider hands them to renderers and tools."""
    provider = layer.dataProvider()
    block = provider.block(band, layer.extent(), layer.width(), layer.height())
    assert block.dataType() == Qgis.DataType.Float32
    values = np.frombuffer(bytes(block.data()), dtype=np.float32).reshape(layer.height(), layer.width())
    nodata = np.array([[block.isNoData(r, c) for c in range(0, layer.width(), 7)] for r in range(0, layer.height(), 7)])
    return values, nodata


def test_file_is_int16_and_qgis_reports_scaled_float32(loaded):
    dataset = gdal.Open(str(loaded["paths"]["int16"]))
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Int16
    provider = loaded["layers"]["int16"].dataProvider()
    for band in (1, 64):
        assert provider.dataType(band) == Qgis.DataType.Float32  # QGIS applies the scale, so it reports floats
        assert provider.bandScale(band) == pytest.approx(INT16_SCALE, rel=1e-15)
        assert provider.bandOffset(band) == 0.0
    assert loaded["layers"]["int16"].bandName(1).endswith("A00")


@pytest.mark.parametrize("band", [1, 2, 33, 64])
def test_block_reads_give_the_float32_values_bit_for_bit(loaded, band):
    floats, float_nodata = block_values(loaded["layers"]["float32"], band)
    ints, int_nodata = block_values(loaded["layers"]["int16"], band)
    np.testing.assert_array_equal(float_nodata, int_nodata)
    assert float_nodata.any() and not float_nodata.all()
    valid = floats != NODATA
    np.testing.assert_array_equal(floats[valid].view(np.uint32), ints[valid].view(np.uint32))


def test_identify_and_sample_give_the_float32_values(loaded):
    layers = loaded["layers"]
    extent = layers["float32"].extent()
    points = [
        QgsPointXY(extent.xMinimum() + (i + 0.5) * extent.width() / 7, extent.yMinimum() + (j + 0.5) * extent.height() / 5)
        for i in range(7)
        for j in range(5)
    ]
    identified = 0
    for point in points:
        want = layers["float32"].dataProvider().identify(point, IDENTIFY_VALUE).results()
        got = layers["int16"].dataProvider().identify(point, IDENTIFY_VALUE).results()
        assert set(want) == set(got) == set(range(1, 65))
        for band in want:
            if want[band] is None:  # nodata
                assert got[band] is None
                continue
            identified += 1
            assert np.float32(got[band]).view(np.uint32) == np.float32(want[band]).view(np.uint32)
            value, ok = layers["int16"].dataProvider().sample(point, band)
            assert ok and value == pytest.approx(want[band], rel=1e-7, abs=1e-12)  # sample(): double, not rounded
    assert identified > 0


def test_raster_calculator_and_processing_statistics_see_the_values(loaded, tmp_path):
    import processing

    outputs = {}
    for key, path in loaded["paths"].items():
        result = processing.run(
            "qgis:rastercalculator",
            {"LAYERS": [str(path)], "EXPRESSION": f'"{key}@5" * 2', "OUTPUT": str(tmp_path / f"calc-{key}.tif")},
        )
        outputs[key] = gdal.Open(result["OUTPUT"]).ReadAsArray()
    valid = outputs["float32"] > -1e30
    np.testing.assert_array_equal(outputs["float32"][valid], outputs["int16"][valid])
    stats = {
        key: processing.run("native:rasterlayerstatistics", {"INPUT": str(path), "BAND": 5})
        for key, path in loaded["paths"].items()
    }
    for name in ("MIN", "MAX", "MEAN"):
        assert stats["int16"][name] == pytest.approx(stats["float32"][name], rel=1e-6), name


def test_similarity_on_the_int16_output_equals_similarity_on_float32(loaded, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    extent = loaded["layers"]["float32"].extent()
    layer = QgsVectorLayer(f"Point?crs={loaded['layers']['float32'].crs().authid()}", "q", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(extent.xMinimum() + 35.0, extent.yMaximum() - 45.0)))
    layer.dataProvider().addFeatures([feature])
    heatmaps = {}
    for key, path in loaded["paths"].items():
        output = tmp_path / f"heat-{key}.tif"
        run("similarity", {"INPUT": str(path), "QUERY": layer, "K": 10, "OUTPUT": str(output)})
        heatmaps[key] = gdal.Open(str(output)).ReadAsArray()
    np.testing.assert_array_equal(heatmaps["float32"].view(np.uint32), heatmaps["int16"].view(np.uint32))
    assert (heatmaps["int16"] != NODATA).any()


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize(
    "extra, words",
    [({"PRODUCT": "tessera"}, ["int16", "AlphaEarth"]), ({"PRODUCT": "tessera", "YEARS": "2023-2024"}, ["int16", "AlphaEarth"])],
    ids=["tessera", "tessera-years"],  # int16 with YEARS works for AlphaEarth: test_load_years_int16.py
)
def test_int16_refusals_are_one_line(tile_2024_31n, tmp_path, runner, extra, words):
    _, tile = tile_2024_31n
    output = tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException) as caught:
        RUNNERS[runner]({"SOURCE": str(tile.parent), "OUTPUT_TYPE": "int16", "OUTPUT": str(output), **extra})
    message = error_message(caught.value)
    assert "\n" not in message.strip() and all(word in message for word in words), message
    assert not output.exists()


def test_default_is_float32(loaded):
    from qgis.core import QgsApplication

    parameter = QgsApplication.processingRegistry().algorithmById("geoembed:load").parameterDefinition("OUTPUT_TYPE")
    assert parameter.flags() & Qgis.ProcessingParameterFlag.Advanced if hasattr(Qgis, "ProcessingParameterFlag") else True
    assert parameter.defaultValue() == "float32" and parameter.options() == ["float32", "int16"]
    assert gdal.Open(str(loaded["paths"]["float32"])).GetRasterBand(1).DataType == gdal.GDT_Float32
