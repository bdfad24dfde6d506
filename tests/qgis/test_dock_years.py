"""The Load tab with several years, driven like a user: the years typed, Load clicked, one styled layer per year read
back through QGIS's raster provider."""

import time

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import QCoreApplication, QEvent

from geoembed import classFactory
from geoembed.providers import settings

from .helpers import EXTENT_BOX, settle

# --- driving the panel (as in test_dock.py) -------------------------------------------------------------


def wait_for(run, timeout=120.0):
    """Let Qt run the task and deliver its signals until the run is over."""
    assert run is not None, "the panel did not start a run"
    deadline = time.monotonic() + timeout
    while not run.done:
        QCoreApplication.processEvents()
        time.sleep(0.005)
        assert time.monotonic() < deadline, f"{run.algorithm.id()} did not finish in {timeout} s"
    QCoreApplication.processEvents()
    return run


def provider_values(layer, band=1):
    """Every value of a band as QGIS's raster provider reads it (rows from the north), NaN where it says nodata."""
    block = layer.dataProvider().block(band, layer.extent(), layer.width(), layer.height())
    out = np.full((layer.height(), layer.width()), np.nan)
    for row in range(layer.height()):
        for col in range(layer.width()):
            if not block.isNoData(row, col):
                out[row, col] = block.value(row, col)
    return out


@pytest.fixture()
def iface(qgis_iface, monkeypatch):
    """pytest-qgis's iface with the raster-menu and dock calls real QGIS has."""
    for method in ("addPluginToRasterMenu", "removePluginRasterMenu"):
        monkeypatch.setattr(qgis_iface, method, lambda menu, action: None, raising=False)
    monkeypatch.setattr(qgis_iface, "removeDockWidget", lambda dock: None, raising=False)
    monkeypatch.setattr(qgis_iface, "addDockWidget", lambda area, dock: None)
    for level in qgis_iface.messageBar().messages.values():
        level.clear()
    return qgis_iface


@pytest.fixture()
def dock(iface, tmp_path):
    before = (settings.output_dir(), settings.aef_mirror(), settings.crs_policy())
    settle()
    QgsProject.instance().removeAllMapLayers()
    settings.set_output_dir(str(tmp_path))
    settings.set_crs_policy("utm")
    plugin = classFactory(iface)
    plugin.initGui()
    yield plugin.show_panel(True)
    settle()
    plugin.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QgsProject.instance().removeAllMapLayers()
    settle()
    settings.set_output_dir(before[0])
    settings.set_aef_mirror(before[1])
    settings.set_crs_policy(before[2])


def set_extent(panel):
    panel.extent.setChecked(True)
    west, south, east, north = EXTENT_BOX
    panel.extent.setOutputExtentFromUser(QgsRectangle(west, south, east, north), QgsCoordinateReferenceSystem("EPSG:4326"))


def embedding_layers():
    return {
        layer.name(): layer
        for layer in QgsProject.instance().mapLayers().values()
        if isinstance(layer, QgsRasterLayer) and layer.name().endswith("embeddings")
    }


# --- the tests ------------------------------------------------------------------------------------------------


def test_years_field_loads_one_styled_layer_per_year_on_one_grid(dock, index_file, tmp_path):
    panel = dock.load_panel
    panel.product.setCurrentIndex(panel.product.findData("aef"))
    panel.source.setFilePath(str(index_file))
    panel.years.setText("2023-2024")
    assert not panel.year.isEnabled()  # the years replace the single year
    set_extent(panel)
    parameters = panel.parameters()
    assert parameters["YEARS"] == "2023-2024" and "YEAR" not in parameters
    panel.load_button.click()
    run = wait_for(dock.current)
    assert run.ok, run.message
    assert run.results["YEARS_LOADED"] == "2023,2024"
    layers = embedding_layers()
    assert sorted(layers) == ["AEF 2023 embeddings", "AEF 2024 embeddings"]
    old, new = layers["AEF 2023 embeddings"], layers["AEF 2024 embeddings"]
    assert old.extent() == new.extent() and (old.width(), old.height()) == (new.width(), new.height())
    assert old.crs() == new.crs()
    assert old.renderer().type() == new.renderer().type() == "multibandcolor"
    assert dock.embedding_layer() is new  # the latest year is the one the other tabs work on
    for layer, year in ((old, 2023), (new, 2024)):
        path = layer.source()
        assert path.endswith(f"_{year}.tif") and path.startswith(str(tmp_path))
        dataset = gdal.Open(path)
        assert dataset.GetMetadataItem("GEOEMBED_YEAR") == str(year)
        expected = dataset.GetRasterBand(5).ReadAsArray().astype(np.float64)
        dataset = None
        got = provider_values(layer, 5)
        np.testing.assert_array_equal(np.isnan(got), expected == -9999.0)
        np.testing.assert_allclose(got[~np.isnan(got)], expected[expected != -9999.0], atol=1e-6)
    # 2023 has no tile east of 6°E: nodata there on the shared grid, where 2024 has values
    assert np.isnan(provider_values(old)).sum() > np.isnan(provider_values(new)).sum()


def test_a_second_years_load_does_not_overwrite_the_first(dock, index_file, tmp_path):
    panel = dock.load_panel
    panel.source.setFilePath(str(index_file))
    panel.years.setText("2024")
    set_extent(panel)
    for _ in range(2):
        run = wait_for(dock.run("geoembed:load", panel.parameters()))
        assert run.ok, run.message
    assert sorted(p.name for p in tmp_path.glob("*.tif")) == ["embeddings_2024.tif", "embeddings_2_2024.tif"]


def test_bad_years_say_one_line_in_the_message_bar_and_add_nothing(dock, iface, index_file, tmp_path):
    panel = dock.load_panel
    panel.source.setFilePath(str(index_file))
    panel.years.setText("2024-2019")
    set_extent(panel)
    panel.load_button.click()
    run = wait_for(dock.current)
    assert not run.ok
    messages = iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert len(messages) == 1 and "\n" not in messages[0] and "backwards" in messages[0]
    assert embedding_layers() == {} and not list(tmp_path.glob("*.tif"))
    panel.years.setText("")
    assert panel.year.isEnabled() and "YEARS" not in panel.parameters()
