"""The Load tab with several years, driven like a user: the years typed, Load clicked, one styled layer per year read
back through QGIS's raster provider."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsProject, QgsRasterLayer, QgsRectangle

from geoembed.providers import settings

from .helpers import EXTENT_BOX, provider_values, wait_for


@pytest.fixture()
def dock(plugin):
    """The panel (conftest's plugin), loading in UTM."""
    settings.set_crs_policy("utm")
    return plugin.show_panel(True)


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
