"""The similarity panel's first view: a click shows the heatmap of what the map shows, at the map's resolution, from
the layer's embedding overviews, at once; the full-resolution heatmap replaces it when its background run is done.
The threshold slider restyles whichever is shown, never recomputing. Values are checked against a brute-force cosine
on the overview level read with GDAL."""

import functools
import time

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QCoreApplication

from geoembed.loaders.raster import overviews

from .helpers import provider_values, wait_for
from .test_dock import click, layers_named, loaded

__all__ = ["loaded"]  # the fixture of test_dock this module uses

PREVIEW = "Similarity (preview)"
EXAMPLE = (20, 150)


def small_map(canvas, layer, pixels):
    """The whole layer on a map of about `pixels` screen pixels a side (fewer than the layer has)."""
    canvas.setFixedSize(pixels, pixels)
    canvas.window().resize(pixels + 50, pixels + 50)
    QCoreApplication.processEvents()
    canvas.setExtent(layer.extent())
    canvas.refresh()


def overview_cosine(path, factor, query):
    """Cosine of every pixel of the overview level of `factor` to a unit query, read with GDAL alone."""
    dataset = gdal.Open(str(path))
    level = next(
        i
        for i in range(dataset.GetRasterBand(1).GetOverviewCount())
        if round(dataset.RasterXSize / dataset.GetRasterBand(1).GetOverview(i).XSize) == factor
    )
    values = np.stack([dataset.GetRasterBand(b + 1).GetOverview(level).ReadAsArray() for b in range(dataset.RasterCount)])
    values = values.astype(np.float64)
    valid = ~(values == -9999.0).any(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.einsum("bij,b->ij", values, query) / np.linalg.norm(values, axis=0)
    return np.where(valid, cosine, np.nan)


def unit_query(embeddings, *cells):
    query = sum(embeddings.values[:, r, c] / np.linalg.norm(embeddings.values[:, r, c]) for r, c in cells)
    return query / np.linalg.norm(query)


@pytest.fixture()
def with_overviews(loaded):
    layer, embeddings = loaded
    assert overviews.build(layer.source(), normalise=True, smallest=16, external=True)
    return layer, embeddings


def test_a_click_shows_the_preview_at_once_then_the_full_resolution_heatmap(dock, with_overviews):
    layer, embeddings = with_overviews
    panel = dock.similarity_panel
    small_map(dock.canvas, layer, layer.width() // 3)
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(*EXAMPLE))
    run = dock.current
    assert run is not None and not run.done  # the full-resolution run is still going: the preview did not wait
    preview = panel.heatmap()
    assert preview is not None and preview.name() == PREVIEW and preview.crs() == layer.crs()
    factor = round(layer.width() / preview.width())
    assert factor in (2, 4)  # the coarsest level with a pixel per screen pixel (the map is a third of the layer)
    assert preview.width() <= dock.canvas.width() * 2
    got = provider_values(preview)
    expected = overview_cosine(layer.source(), factor, unit_query(embeddings, EXAMPLE))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], atol=1e-5)

    wait_for(run)
    heatmap = panel.heatmap()
    assert heatmap.name() != PREVIEW and (heatmap.width(), heatmap.height()) == (layer.width(), layer.height())
    assert layers_named(PREVIEW) == []  # replaced, not left behind
    np.testing.assert_allclose(provider_values(heatmap)[EXAMPLE], 1.0, atol=1e-6)


def test_the_slider_restyles_the_preview_and_the_heatmap_without_recomputing(dock, with_overviews):
    layer, embeddings = with_overviews
    panel = dock.similarity_panel
    small_map(dock.canvas, layer, layer.width() // 3)
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(*EXAMPLE))
    run, layers = dock.current, set(QgsProject.instance().mapLayers())
    preview = panel.heatmap()
    panel.threshold.setValue(50)
    renderer = preview.renderer()
    assert renderer.classificationMin() == pytest.approx(0.5) and renderer.shader().rasterShaderFunction().clip()
    assert dock.current is run and set(QgsProject.instance().mapLayers()) == layers  # nothing recomputed or added
    wait_for(run)
    assert panel.heatmap().renderer().classificationMin() == pytest.approx(0.5)  # the full heatmap keeps the threshold
    panel.threshold.setValue(-20)
    assert panel.heatmap().renderer().classificationMin() == pytest.approx(-0.2) and dock.current is run


def test_a_counter_example_is_subtracted_in_the_preview_too(dock, with_overviews):
    layer, embeddings = with_overviews
    panel = dock.similarity_panel
    small_map(dock.canvas, layer, layer.width() // 3)
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(*EXAMPLE))
    wait_for(dock.current)
    from qgis.PyQt.QtCore import Qt

    negative = (200, 30)
    click(panel.tool, dock.canvas, embeddings.centre(*negative), modifiers=Qt.KeyboardModifier.AltModifier)
    preview = panel.heatmap()
    assert preview.name() == PREVIEW
    factor = round(layer.width() / preview.width())
    expected = overview_cosine(layer.source(), factor, unit_query(embeddings, EXAMPLE)) - overview_cosine(
        layer.source(), factor, unit_query(embeddings, negative)
    )
    got = provider_values(preview)
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], atol=2e-5)
    wait_for(dock.current)


def test_a_large_layer_without_overviews_gets_them_built_for_the_next_click(dock, loaded, monkeypatch):
    layer, embeddings = loaded
    monkeypatch.setattr(overviews, "build", functools.partial(overviews.build, smallest=16))  # the fixture is small
    panel = dock.similarity_panel
    small_map(dock.canvas, layer, layer.width() // 4)  # a sixteenth of the layer's pixels: too many to read at once
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(*EXAMPLE))
    assert layers_named(PREVIEW) == []  # no preview: the overviews are being built
    wait_for(dock.current)
    deadline = time.monotonic() + 60
    while panel.overview_builder.running:
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.monotonic() < deadline
    assert overviews.has_overviews(layer.source())
    click(panel.tool, dock.canvas, embeddings.centre(*EXAMPLE))
    assert panel.heatmap().name() == PREVIEW
    wait_for(dock.current)
    assert layers_named(PREVIEW) == []
