"""The dock panel driven like a user: widgets set, buttons clicked, map clicks simulated; the layers that appear
are read back through QGIS's raster provider and checked against values computed here from the files."""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPoint, Qt
from qgis.PyQt.QtGui import QColor, QImage, QPainter
from qgis.PyQt.QtWidgets import QAction, QDockWidget

from geoembed import classFactory
from geoembed.loaders import load
from geoembed.providers import settings
from geoembed.ui.dock import GeoEmbedDock
from geoembed.ui.menu import ENTRIES, PANEL_ACTION

from .helpers import EXTENT_BOX, provider_values, wait_for

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "dock_similarity.png"


# --- driving the panel ---------------------------------------------------------------------------


def click(tool, canvas, point, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier):
    """A mouse release on the canvas at a map point (in the canvas CRS), delivered to a map tool."""
    pixel = canvas.getCoordinateTransform().transform(point)
    position = QPoint(round(pixel.x()), round(pixel.y()))
    event = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, position, button, button, modifiers)
    tool.canvasReleaseEvent(event)


def show_layer(canvas, layer):
    """The layer in full on the canvas, big enough that a canvas pixel is smaller than a layer pixel."""
    canvas.setFixedSize(4 * layer.width(), 4 * layer.height())
    canvas.window().resize(4 * layer.width() + 50, 4 * layer.height() + 50)
    canvas.window().show()  # offscreen: the canvas takes its size (and map scale) only once shown
    QCoreApplication.processEvents()
    assert canvas.mapSettings().outputSize().width() >= 3 * layer.width()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    canvas.refresh()


def layers_named(name):
    return QgsProject.instance().mapLayersByName(name)


class Embeddings:
    """A GeoTIFF of embeddings read with GDAL (independently of GeoEmbed): values (bands, rows, cols) and its grid."""

    def __init__(self, path):
        dataset = gdal.Open(str(path))
        self.values = dataset.ReadAsArray().astype(np.float64)
        self.valid = ~(self.values == -9999.0).any(axis=0)
        self.x0, self.res_x, _, self.y0, _, res_y = dataset.GetGeoTransform()
        self.res_y = -res_y
        dataset = None

    def cell(self, point):
        return int((self.y0 - point.y()) // self.res_y), int((point.x() - self.x0) // self.res_x)

    def centre(self, row, col):
        return QgsPointXY(self.x0 + (col + 0.5) * self.res_x, self.y0 - (row + 0.5) * self.res_y)

    def cosine_to(self, *cells):
        """Cosine to the normalised mean of the examples, each normalised first (as the similarity contract says)."""
        query = sum(self.values[:, r, c] / np.linalg.norm(self.values[:, r, c]) for r, c in cells)
        query = query / np.linalg.norm(query)
        norms = np.linalg.norm(self.values, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.einsum("bij,b->ij", self.values, query) / norms


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture()
def loaded(dock, tile_2024_31n):
    """The 2024 31N fixture tile loaded through the Load tab; (layer, Embeddings of its file)."""
    _, tile = tile_2024_31n
    panel = dock.load_panel
    panel.product.setCurrentIndex(panel.product.findData("aef"))
    panel.source.setFilePath(str(tile))
    panel.load_button.click()
    run = wait_for(dock.current)
    assert run.ok, run.message
    layer = dock.embedding_layer()
    assert isinstance(layer, QgsRasterLayer)
    show_layer(dock.canvas, layer)
    return layer, Embeddings(layer.source())


# --- the panel in the QGIS window --------------------------------------------------------------------


def test_panel_action_shows_the_dock_and_unload_removes_everything(iface):
    plugin = classFactory(iface)
    plugin.initGui()
    actions = iface.mainWindow().findChildren(QAction, PANEL_ACTION)
    assert len(actions) == 1 and actions[0].isCheckable()
    assert [m for m, _ in iface.calls] == ["addPluginToRasterMenu"] * (len(ENTRIES) + 1)
    assert plugin.dock is None  # built on first use, not at QGIS start
    actions[0].trigger()
    dock = plugin.dock
    assert isinstance(dock, GeoEmbedDock) and not dock.isHidden()  # (the stub's main window itself is never shown)
    assert ("addDockWidget", dock) in iface.calls
    actions[0].trigger()
    assert dock.isHidden() and plugin.dock is dock  # the same panel, hidden, not rebuilt
    actions[0].trigger()
    assert not dock.isHidden()
    dock.similarity_panel.pick_button.setChecked(True)
    assert iface.mapCanvas().mapTool() is dock.similarity_panel.tool
    dock.label_panel.polygon_button.setChecked(True)  # another tool takes over the canvas
    assert iface.mapCanvas().mapTool() is dock.label_panel.polygon_tool
    assert not dock.similarity_panel.pick_button.isChecked()
    plugin.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert iface.mapCanvas().mapTool() is None
    assert ("removeDockWidget", dock) in iface.calls
    assert sip.isdeleted(dock)
    assert [a for a in iface.mainWindow().findChildren(QAction, PANEL_ACTION) if not sip.isdeleted(a)] == []
    docks = iface.mainWindow().findChildren(QDockWidget, "GeoEmbedDock")
    assert [d for d in docks if not sip.isdeleted(d)] == []
    assert [m for m, _ in iface.calls].count("removePluginRasterMenu") == len(ENTRIES) + 1


def test_catalog_choice_shows_resolution_dims_and_licence(dock):
    panel = dock.load_panel
    assert panel.product.count() == 10  # auto + eight products + any other embedding raster (generic)
    panel.product.setCurrentIndex(panel.product.findData("tessera"))
    text = panel.about.text()
    assert "10 m" in text and "128 dimensions" in text and "licence" in text
    panel.product.setCurrentIndex(panel.product.findData("copernicus-embed"))
    assert "768 dimensions" in panel.about.text()


# --- load ----------------------------------------------------------------------------------------------


def test_load_tab_adds_a_styled_layer_with_the_tiles_values(loaded, tile_2024_31n):
    from tests.fixtures.aef import tile_codes

    layer, embeddings = loaded
    spec, _ = tile_2024_31n
    assert layer.bandCount() == 64 and layer.bandName(1).endswith("A00")
    assert layer.renderer().type() == "multibandcolor"  # the algorithm's own styling was applied
    codes = tile_codes(spec).astype(np.float64)  # north-up: what the layer must show
    expected = np.sign(codes) * (codes / 127.5) ** 2
    for band in (1, 17, 64):
        got = provider_values(layer, band)
        valid = ~(codes == -128).any(axis=0)
        np.testing.assert_array_equal(np.isnan(got), ~valid)
        np.testing.assert_allclose(got[valid], expected[band - 1][valid], atol=1e-6)
    assert embeddings.valid.sum() == (~(codes == -128).any(axis=0)).sum()


def test_load_tab_with_an_extent_reads_the_mirror_set_in_the_settings(dock, aef_mirror, saved_settings):
    dock.settings_panel.mirror.setText(str(aef_mirror))
    dock.settings_panel.save_button.click()
    assert settings.aef_mirror() == str(aef_mirror)
    panel = dock.load_panel
    panel.product.setCurrentIndex(panel.product.findData("aef"))
    panel.year.setValue(2024)
    panel.extent.setChecked(True)
    west, south, east, north = EXTENT_BOX
    panel.extent.setOutputExtentFromUser(QgsRectangle(west, south, east, north), QgsCoordinateReferenceSystem("EPSG:4326"))
    parameters = panel.parameters()
    assert parameters["SOURCE"] == "" and parameters["YEAR"] == 2024
    assert parameters["EXTENT"].endswith("[EPSG:4326]")
    panel.load_button.click()
    run = wait_for(dock.current)
    assert run.ok, run.message
    assert run.results["YEAR"] == 2024 and run.results["CRS"] == "EPSG:32632"  # the extent's centre is east of 6°E
    layer = dock.embedding_layer()
    assert layer is not None and layer.crs().authid() == "EPSG:32632"
    assert any("mirror set in the GeoEmbed settings" in line for line in run.feedback.lines)


def test_crs_policy_project_loads_in_the_project_crs(dock, tile_2024_31n, saved_settings):
    settings.set_crs_policy("project")
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    try:
        panel = dock.load_panel
        panel.source.setFilePath(str(tile_2024_31n[1]))
        assert panel.parameters()["CRS"] == "EPSG:3857"
        panel.load_button.click()
        run = wait_for(dock.current)
        assert run.ok, run.message
        assert dock.embedding_layer().crs().authid() == "EPSG:3857"
    finally:
        QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))


def test_a_failing_load_says_one_line_in_the_message_bar_and_adds_nothing(dock, iface, tmp_path):
    panel = dock.load_panel
    panel.source.setFilePath(str(tmp_path / "missing.tif"))
    before = set(QgsProject.instance().mapLayers())
    panel.load_button.click()
    run = wait_for(dock.current)
    assert not run.ok
    messages = iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert len(messages) == 1 and "\n" not in messages[0] and "Traceback" not in messages[0]
    assert "missing.tif" in messages[0]
    assert dock.status.text() == run.message.splitlines()[0]
    assert set(QgsProject.instance().mapLayers()) == before
    assert not list(tmp_path.glob("*.tif"))


def test_cancel_stops_the_run_and_leaves_no_file(dock, tile_2024_31n, tmp_path, monkeypatch):
    # The load waits before writing until Cancel was clicked: on a busy machine a small load could otherwise finish
    # (and write its file) between the two clicks.
    cancel_clicked, write_geotiff = threading.Event(), load.write_geotiff
    monkeypatch.setattr(load, "write_geotiff", lambda *a, **k: cancel_clicked.wait(60) and write_geotiff(*a, **k))
    panel = dock.load_panel
    panel.source.setFilePath(str(tile_2024_31n[1]))
    output = tmp_path / "cancelled.tif"
    panel.output.setFilePath(str(output))
    panel.load_button.click()
    assert dock.cancel_button.isEnabled()
    dock.cancel_button.click()
    cancel_clicked.set()
    run = wait_for(dock.current)
    assert not run.ok and run.message == "Cancelled."
    assert not dock.cancel_button.isEnabled()
    assert not output.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert dock.embedding_layer() is None


def test_a_second_run_waits_for_the_first(dock, iface, tile_2024_31n):
    panel = dock.load_panel
    panel.source.setFilePath(str(tile_2024_31n[1]))
    panel.load_button.click()
    first = dock.current
    assert dock.run("geoembed:catalog", {}) is None  # refused while busy, with a word in the message bar
    assert any("still running" in m for m in iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    wait_for(first)
    assert first.ok


# --- similarity by clicking -------------------------------------------------------------------------------


def test_click_shift_click_and_alt_click_give_the_heatmap_to_the_examples(dock, loaded):
    layer, embeddings = loaded
    panel = dock.similarity_panel
    panel.pick_button.setChecked(True)
    canvas = dock.canvas
    a, b, n = (20, 150), (150, 200), (200, 30)
    assert all(embeddings.valid[cell] for cell in (a, b, n))

    click(panel.tool, canvas, embeddings.centre(*a))
    wait_for(dock.current)
    heatmap = panel.heatmap()
    assert isinstance(heatmap, QgsRasterLayer) and heatmap.crs() == layer.crs()
    got = provider_values(heatmap)
    expected = embeddings.cosine_to(a)
    np.testing.assert_array_equal(np.isnan(got), ~embeddings.valid)
    np.testing.assert_allclose(got[embeddings.valid], expected[embeddings.valid], atol=1e-5)
    assert got[a] == pytest.approx(1.0, abs=1e-6)
    name = heatmap.name()

    click(panel.tool, canvas, embeddings.centre(*b), modifiers=Qt.KeyboardModifier.ShiftModifier)
    wait_for(dock.current)
    examples = layers_named("GeoEmbed examples")[0]
    assert sorted(embeddings.cell(f.geometry().asPoint()) for f in examples.getFeatures()) == sorted([a, b])
    assert len([lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name() == name]) == 1  # replaced
    got = provider_values(panel.heatmap())
    expected = embeddings.cosine_to(a, b)
    np.testing.assert_allclose(got[embeddings.valid], expected[embeddings.valid], atol=1e-5)

    click(panel.tool, canvas, embeddings.centre(*n), modifiers=Qt.KeyboardModifier.AltModifier)
    wait_for(dock.current)
    assert layers_named("GeoEmbed counter-examples")[0].featureCount() == 1
    got = provider_values(panel.heatmap())
    expected = embeddings.cosine_to(a, b) - embeddings.cosine_to(n)
    np.testing.assert_allclose(got[embeddings.valid], expected[embeddings.valid], atol=1e-5)

    click(panel.tool, canvas, embeddings.centre(*b))  # a plain click starts over
    wait_for(dock.current)
    assert layers_named("GeoEmbed examples")[0].featureCount() == 1
    assert layers_named("GeoEmbed counter-examples")[0].featureCount() == 0
    np.testing.assert_allclose(provider_values(panel.heatmap())[b], 1.0, atol=1e-6)


def test_threshold_slider_masks_the_heatmap_live(dock, loaded):
    _, embeddings = loaded
    panel = dock.similarity_panel
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(20, 150))
    wait_for(dock.current)
    renderer = panel.heatmap().renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    panel.threshold.setValue(50)
    renderer = panel.heatmap().renderer()
    assert renderer.classificationMin() == pytest.approx(0.5) and renderer.classificationMax() == pytest.approx(1.0)
    assert renderer.shader().rasterShaderFunction().clip()
    assert panel.threshold_label.text() == "+0.50"
    # what QGIS draws: a pixel under the threshold is transparent, the clicked one is not
    values = provider_values(panel.heatmap())
    low = np.argwhere(values < 0.2)[0]
    block = renderer.block(1, panel.heatmap().extent(), panel.heatmap().width(), panel.heatmap().height())
    assert QColor.fromRgba(block.color(int(low[0]), int(low[1]))).alpha() == 0
    assert QColor.fromRgba(block.color(20, 150)).alpha() == 255


def test_top_k_button_drops_the_best_matches(dock, loaded):
    layer, embeddings = loaded
    panel = dock.similarity_panel
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(20, 150))
    wait_for(dock.current)
    panel.k.setValue(7)
    panel.top_button.click()
    wait_for(dock.current)
    layers = QgsProject.instance().mapLayers().values()
    matches = [lyr for lyr in layers if isinstance(lyr, QgsVectorLayer) and "match" in lyr.name().lower()]
    assert len(matches) == 1 and matches[0].featureCount() == 7
    scores = sorted((f["rank"], f["score"]) for f in matches[0].getFeatures())
    expected = np.sort(embeddings.cosine_to((20, 150))[embeddings.valid])[::-1][:7]
    np.testing.assert_allclose([s for _, s in scores], expected, atol=1e-5)


def test_a_click_without_an_embedding_layer_asks_for_one(dock, iface):
    dock.similarity_panel.pick(QgsPointXY(0, 0), "new")
    assert any("embedding layer" in m for m in iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    assert dock.current is None


# --- labelling and training ----------------------------------------------------------------------------


def label_cells(embeddings, count, seed, near):
    """count valid cells near another cell whose vectors are close to it (so a class is learnable)."""
    rng = np.random.default_rng(seed)
    similar = embeddings.cosine_to(near) > 0.95
    cells = np.argwhere(similar & embeddings.valid)
    return [tuple(c) for c in cells[rng.choice(len(cells), size=min(count, len(cells)), replace=False)]]


def test_label_points_and_polygons_then_train_shows_maps_and_confusion(dock, loaded):
    layer, embeddings = loaded
    panel = dock.label_panel
    panel.add_class("water", QColor("blue"))
    panel.add_class("forest", QColor("green"))
    assert [n for n, _ in panel.classes] == ["water", "forest"]
    water = label_cells(embeddings, 12, 1, (20, 150))
    forest = label_cells(embeddings, 12, 2, (150, 200))
    panel.point_button.setChecked(True)
    canvas = dock.canvas
    panel.class_list.setCurrentRow(0)
    for cell in water:
        click(panel.point_tool, canvas, embeddings.centre(*cell))
    panel.class_list.setCurrentRow(1)
    for cell in forest[:6]:
        click(panel.point_tool, canvas, embeddings.centre(*cell))
    points = layers_named("GeoEmbed labels (points)")[0]
    assert points.featureCount() == 18
    assert sorted(f["class"] for f in points.getFeatures()) == ["forest"] * 6 + ["water"] * 12
    # one forest polygon: a small square around the centre of one more forest cell, drawn corner by corner
    panel.polygon_button.setChecked(True)
    row, col = forest[6]
    corners = [embeddings.centre(row + dr, col + dc) for dr, dc in ((-0.4, -0.4), (-0.4, 0.4), (0.4, 0.4), (0.4, -0.4))]
    for corner in corners:
        click(panel.polygon_tool, canvas, corner)
    click(panel.polygon_tool, canvas, corners[0], button=Qt.MouseButton.RightButton)
    polygons = layers_named("GeoEmbed labels (polygons)")[0]
    assert polygons.featureCount() == 1 and next(polygons.getFeatures())["class"] == "forest"
    training = panel.training_layer()
    assert training.featureCount() == 19  # both kinds merged: each point becomes its pixel's footprint

    panel.method.setCurrentIndex(panel.method.findData("nearest_centroid"))
    panel.train_button.click()
    run = wait_for(dock.current)
    assert run.ok, run.message
    metrics = json.loads(run.results["METRICS"])
    assert metrics["classes"] == ["forest", "water"] and sum(metrics["counts"]) >= 19
    classes = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == run.results["OUTPUT"]]
    confidence = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == run.results["OUTPUT_CONFIDENCE"]]
    assert len(classes) == 1 and len(confidence) == 1
    assert classes[0].renderer().type() == "paletted"
    predicted = provider_values(classes[0])
    names = metrics["classes"]
    for cell in water:
        assert names[int(predicted[cell]) - 1] == "water"
    for cell in forest:
        assert names[int(predicted[cell]) - 1] == "forest"
    table = panel.confusion
    assert table.rowCount() == table.columnCount() == 2
    assert [table.horizontalHeaderItem(i).text() for i in range(2)] == ["forest", "water"]
    if metrics["accuracy"] is not None:
        shown = sum(int(table.item(r, c).text()) for r in range(2) for c in range(2))
        assert shown == sum(map(sum, metrics["confusion"]))
        assert "%" in panel.accuracy.text()
    assert panel.report_button.isEnabled() and os.path.exists(panel.report_path)


def test_training_without_labels_or_class_says_what_to_do(dock, iface, loaded):
    panel = dock.label_panel
    panel.add_point(embeddings_centre := loaded[1].centre(10, 10))
    assert any("Add a class" in m for m in iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    assert panel.train() is None
    assert any("Label some points" in m for m in iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    panel.add_class("a", QColor("red"))
    panel.add_class("a", QColor("red"))
    assert any("already a class" in m for m in iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    panel.add_point(embeddings_centre)
    assert layers_named("GeoEmbed labels (points)")[0].featureCount() == 1


# --- sample and resample ---------------------------------------------------------------------------------


def test_sample_and_resample_from_the_panel(dock, loaded):
    layer, embeddings = loaded
    points = QgsVectorLayer(f"Point?crs={layer.crs().authid()}&field=name:string", "sites", "memory")
    from geoembed.ui.layers import add_point

    cells = [(5, 5), (100, 120), (200, 250)]
    for index, cell in enumerate(cells):
        add_point(points, embeddings.centre(*cell), [f"site{index}"])
    QgsProject.instance().addMapLayer(points)
    panel = dock.tools_panel
    panel.points.setLayer(points)
    run = wait_for(panel.sample())
    assert run.ok, run.message
    sampled = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source().split("|")[0] == run.results["OUTPUT"]]
    assert len(sampled) == 1
    for feature in sampled[0].getFeatures():
        row, col = cells[int(feature["name"][4:])]
        np.testing.assert_allclose([feature["A00"], feature["A63"]], embeddings.values[[0, 63], row, col], atol=1e-6)

    panel.mode.setCurrentIndex(panel.mode.findData("aggregate"))
    panel.resolution.setValue(30.0)
    run = wait_for(panel.resample())
    assert run.ok, run.message
    coarse = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == run.results["OUTPUT"]][0]
    assert coarse.rasterUnitsPerPixelX() == pytest.approx(30.0)
    got = np.stack([provider_values(coarse, band) for band in (1, 2, 3)])
    block = embeddings.values[:, 0:3, 0:3][:, embeddings.valid[0:3, 0:3]].sum(axis=1)
    np.testing.assert_allclose(got[:, 0, 0], (block / np.linalg.norm(block))[:3], atol=1e-5)


# --- the screenshot in the README ---------------------------------------------------------------------------


def test_screenshot_of_the_panel_beside_a_heatmap(dock, loaded, iface):
    layer, embeddings = loaded
    panel = dock.similarity_panel
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(20, 150))
    wait_for(dock.current)
    panel.threshold.setValue(0)  # about half the map is more like the example than not
    dock.tabs.setCurrentWidget(panel)
    canvas = dock.canvas
    canvas.setLayers([layers_named("GeoEmbed examples")[0], panel.heatmap(), layer])
    show_layer(canvas, layer)
    canvas.setFixedSize(2 * layer.width(), 2 * layer.height())
    QCoreApplication.processEvents()
    canvas.zoomToFullExtent()
    canvas.refresh()
    canvas.waitWhileRendering()
    dock.resize(380, 560)
    dock.show()
    QCoreApplication.processEvents()
    map_image, panel_image = canvas.grab().toImage(), dock.grab().toImage()
    assert not map_image.isNull() and not panel_image.isNull()
    width, height = map_image.width() + panel_image.width(), max(map_image.height(), panel_image.height())
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.drawImage(0, 0, map_image)
    painter.drawImage(map_image.width(), 0, panel_image)
    painter.end()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert image.save(str(SCREENSHOT))
    colours = {map_image.pixel(x, y) for x in range(0, map_image.width(), 16) for y in range(0, map_image.height(), 16)}
    assert len(colours) > 5, "the map is blank: the heatmap was not drawn"


def test_quick_clicks_replace_the_running_heatmap(dock, loaded):
    _, embeddings = loaded
    panel = dock.similarity_panel
    panel.pick_button.setChecked(True)
    click(panel.tool, dock.canvas, embeddings.centre(150, 200))
    first = dock.current
    click(panel.tool, dock.canvas, embeddings.centre(20, 150))  # before the first heatmap is ready
    assert dock.current is not first
    wait_for(first)
    wait_for(dock.current)
    heatmaps = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name() == panel.heatmap().name()]
    assert heatmaps == [panel.heatmap()]  # the replaced run added nothing
    np.testing.assert_allclose(provider_values(panel.heatmap())[20, 150], 1.0, atol=1e-6)
