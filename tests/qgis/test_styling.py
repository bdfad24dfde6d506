"""Loading the OUTPUT into the project: layer name and the RGB style of Google's AEF visualisation."""

import pytest
from qgis.core import (
    QgsApplication,
    QgsMultiBandColorRenderer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsRasterLayer,
)

from geoembed.providers.styles import apply_band_style

LAYER_NAME = "AEF 2024 embeddings"
RGB = {"red": ("A01", 2), "green": ("A16", 17), "blue": ("A09", 10)}  # band name, 1-based band number


def loaded_layers(project, before):
    return [layer for layer_id, layer in project.mapLayers().items() if layer_id not in before]


def assert_aef_style(layer):
    renderer = layer.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer), type(renderer).__name__
    bands = {"red": renderer.redBand(), "green": renderer.greenBand(), "blue": renderer.blueBand()}
    enhancements = {
        "red": renderer.redContrastEnhancement(),
        "green": renderer.greenContrastEnhancement(),
        "blue": renderer.blueContrastEnhancement(),
    }
    for colour, (name, number) in RGB.items():
        assert bands[colour] == number, f"{colour}: band {bands[colour]}, expected {number} ({name})"
        assert layer.bandName(bands[colour]).endswith(name)
        enhancement = enhancements[colour]
        assert enhancement is not None, colour
        assert enhancement.minimumValue() == pytest.approx(-0.3)
        assert enhancement.maximumValue() == pytest.approx(0.3)


def test_run_and_load_results(project, tile_2024_31n, tmp_path):
    """processing.runAndLoadResults(), as the Python console and scripts do it."""
    import processing

    before = set(project.mapLayers())
    output = tmp_path / "embeddings.tif"
    processing.runAndLoadResults("geoembed:load", {"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": str(output)})
    layers = loaded_layers(project, before)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.source() == str(output)
    assert layer.name() == LAYER_NAME
    assert_aef_style(layer)


def test_load_on_completion_with_the_processing_post_processing(project, tile_2024_31n, tmp_path):
    """The C++ run() + Processing's handleAlgorithmResults(): the toolbox dialog's path."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    before = set(project.mapLayers())
    output = str(tmp_path / "embeddings.tif")
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geoembed:load")
    destination = QgsProcessingOutputLayerDefinition(output, project)
    parameters = {"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": destination}
    results, ok = QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)
    assert ok and results["OUTPUT"] == output
    assert context.willLoadLayerOnCompletion(output)
    details = context.layerToLoadOnCompletionDetails(output)
    assert details.name == LAYER_NAME
    assert details.postProcessor() is not None
    assert handleAlgorithmResults(algorithm, context, feedback)
    layers = loaded_layers(project, before)
    assert len(layers) == 1
    assert layers[0].source() == output
    assert layers[0].name() == LAYER_NAME  # with QGIS's default "prefer file name as layer name" setting too
    assert_aef_style(layers[0])


def test_apply_band_style_on_a_loaded_layer(load_case):
    layer = load_case("tile", "aef", "cpp-run")["layer"]
    layer = QgsRasterLayer(layer.source(), "embeddings", "gdal")  # a fresh layer, not shared with other tests
    apply_band_style(layer, ("A01", "A16", "A09"), (-0.3, 0.3))
    assert_aef_style(layer)


def test_apply_band_style_follows_band_names_not_positions(tmp_path):
    """Bands found by name: a raster whose bands are in another order still shows A01/A16/A09."""
    from osgeo import gdal

    path = tmp_path / "shuffled.tif"
    names = [f"A{i:02d}" for i in reversed(range(64))]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 4, 4, 64, gdal.GDT_Float32)
    dataset.SetGeoTransform((0, 10, 0, 40, 0, -10))
    for band, name in enumerate(names, start=1):
        dataset.GetRasterBand(band).SetDescription(name)
    dataset = None
    layer = QgsRasterLayer(str(path), "shuffled", "gdal")
    assert layer.isValid()
    apply_band_style(layer, ("A01", "A16", "A09"), (-0.3, 0.3))
    renderer = layer.renderer()
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (64 - 1, 64 - 16, 64 - 9)
