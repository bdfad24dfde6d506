"""How QGIS (desktop and qgis_process) loads the plugin: provider registration, menu/toolbar, unload."""

import configparser
import re
from pathlib import Path

import pytest
from qgis.core import QgsApplication
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QAction, QToolBar

import geoembed
from geoembed import __about__, classFactory
from geoembed.ui.menu import ENTRIES

from .conftest import PROVIDER_ID, geoembed_providers

MENU_ENTRIES = len(ENTRIES) + 1  # the dock panel, then one entry per algorithm

PLUGIN_DIR = Path(geoembed.__file__).resolve().parent
ACTION_NAME = "GeoEmbed_load"


def flush_deletes():
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture()
def metadata():
    parser = configparser.ConfigParser(interpolation=None)
    assert parser.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
    return parser["general"]


@pytest.fixture()
def without_session_provider(geoembed_session):
    """Unregister the session's provider for the test; the autouse fixture re-registers it afterwards."""
    geoembed_session.unload()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is None
    yield
    for provider in geoembed_providers():  # whatever the test left behind
        QgsApplication.processingRegistry().removeProvider(provider)


@pytest.fixture()
def iface_spy(qgis_iface, monkeypatch):
    """pytest-qgis's QgisInterface stub, completed with the raster-menu calls real QGIS has (the stub lacks them)."""
    calls = []
    for method, kind in (("addPluginToRasterMenu", "add"), ("removePluginRasterMenu", "remove")):
        monkeypatch.setattr(qgis_iface, method, lambda menu, action, kind=kind: calls.append((kind, menu, action)), raising=False)
    return qgis_iface, calls


def geoembed_actions(iface):
    return [a for a in iface.mainWindow().findChildren(QAction, ACTION_NAME) if not sip.isdeleted(a)]


def geoembed_toolbars(iface):
    return [t for t in iface.mainWindow().findChildren(QToolBar) if not sip.isdeleted(t) and t.windowTitle() == "GeoEmbed"]


# --- Processing registration -----------------------------------------------------------------


def test_initprocessing_registers_the_provider_and_its_algorithm():
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById(PROVIDER_ID)
    assert provider is not None
    assert provider.name() == "GeoEmbed"
    assert sorted(a.id() for a in provider.algorithms()) == [
        "geoembed:catalog",
        "geoembed:change",
        "geoembed:classify",
        "geoembed:cluster",
        "geoembed:compare",
        "geoembed:detect",
        "geoembed:intrinsicdim",
        "geoembed:load",
        "geoembed:pca",
        "geoembed:regress",
        "geoembed:resample",
        "geoembed:sample",
        "geoembed:similarity",
        "geoembed:train",
        "geoembed:trajectory",
        "geoembed:transitions",
        "geoembed:zonal",
    ]
    algorithm = registry.algorithmById("geoembed:load")
    assert algorithm is not None and algorithm.provider().id() == PROVIDER_ID
    names = {p.name() for p in algorithm.parameterDefinitions()}
    assert {"PRODUCT", "SOURCE", "EXTENT", "YEAR", "CRS", "OUTPUT", "QUICKLOOK"} <= names  # the public contract
    assert registry.createAlgorithmById("geoembed:load") is not None


def test_initprocessing_twice_and_a_second_plugin_do_not_register_twice(geoembed_session):
    geoembed_session.initProcessing()
    second = classFactory(None)
    second.initProcessing()
    second.initProcessing()
    assert len(geoembed_providers()) == 1
    assert second.provider is None
    second.unload()  # a plugin that registered nothing must not remove another's provider
    assert len(geoembed_providers()) == 1
    provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
    assert not sip.isdeleted(provider) and provider.algorithms()


def test_unload_removes_the_provider(without_session_provider):
    registry = QgsApplication.processingRegistry()
    plugin = classFactory(None)
    plugin.initProcessing()
    assert registry.providerById(PROVIDER_ID) is not None
    assert registry.algorithmById("geoembed:load") is not None
    plugin.initProcessing()
    assert len(geoembed_providers()) == 1
    plugin.unload()
    assert registry.providerById(PROVIDER_ID) is None
    assert registry.algorithmById("geoembed:load") is None
    plugin.unload()  # a second unload is harmless
    plugin.initProcessing()  # and the plugin can be loaded again (plugin reloader)
    assert registry.providerById(PROVIDER_ID) is not None
    plugin.unload()
    assert registry.providerById(PROVIDER_ID) is None


def test_provider_version_is_the_plugin_version(metadata):
    provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
    assert provider.versionInfo() == __about__.__version__ == metadata["version"]
    assert metadata["version"] in provider.longName()


# --- desktop GUI -------------------------------------------------------------------------------


def test_initgui_adds_menu_and_toolbar_actions_and_unload_removes_them(iface_spy):
    iface, calls = iface_spy
    assert geoembed_actions(iface) == []
    plugin = classFactory(iface)
    plugin.initGui()
    try:
        assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None
        assert len(geoembed_providers()) == 1
        actions = geoembed_actions(iface)
        assert len(actions) == 1
        action = actions[0]
        assert action.text() and not action.icon().isNull()
        assert [(kind, menu) for kind, menu, _ in calls] == [("add", "&GeoEmbed")] * MENU_ENTRIES
        assert action in [added for _, _, added in calls]
        toolbars = geoembed_toolbars(iface)
        assert len(toolbars) == 1
        assert toolbars[0].objectName() == "GeoEmbedToolbar"
        assert action in toolbars[0].actions()
    finally:
        plugin.unload()
    flush_deletes()
    expected = [("add", "&GeoEmbed")] * MENU_ENTRIES + [("remove", "&GeoEmbed")] * MENU_ENTRIES
    assert [(kind, menu) for kind, menu, _ in calls] == expected
    assert geoembed_actions(iface) == []
    assert geoembed_toolbars(iface) == []
    # the session's provider (registered before initGui) is not the GUI plugin's to remove
    assert len(geoembed_providers()) == 1


def test_initgui_twice_over_load_unload_cycles_leaves_nothing_behind(iface_spy):
    iface, calls = iface_spy
    for _ in range(2):
        plugin = classFactory(iface)
        plugin.initGui()
        assert len(geoembed_actions(iface)) == 1
        plugin.unload()
        flush_deletes()
        assert geoembed_actions(iface) == [] and geoembed_toolbars(iface) == []
    assert [kind for kind, _, _ in calls] == (["add"] * MENU_ENTRIES + ["remove"] * MENU_ENTRIES) * 2


def test_action_opens_the_load_dialog(iface_spy, monkeypatch):
    import processing

    iface, _ = iface_spy
    opened = []
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda alg_id, params=None: opened.append(alg_id))
    plugin = classFactory(iface)
    plugin.initGui()
    try:
        geoembed_actions(iface)[0].trigger()
    finally:
        plugin.unload()
        flush_deletes()
    assert opened == ["geoembed:load"]
    assert QgsApplication.processingRegistry().algorithmById(opened[0]) is not None


class Tripwire:
    """Stands in for qgis.utils.iface: records any use."""

    def __init__(self):
        self.touched = []

    def __getattr__(self, name):
        self.touched.append(name)
        raise AttributeError(name)

    def __bool__(self):
        self.touched.append("__bool__")
        return True


def test_without_iface_nothing_touches_iface(without_session_provider, qgis_iface, monkeypatch):
    import qgis.utils

    tripwire = Tripwire()
    monkeypatch.setattr(qgis.utils, "iface", tripwire)
    before = (len(geoembed_actions(qgis_iface)), len(geoembed_toolbars(qgis_iface)))
    plugin = classFactory(None)  # what qgis_process does
    plugin.initProcessing()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is not None
    plugin.initGui()  # harmless without iface
    assert plugin.menu is None
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is None
    assert tripwire.touched == []
    assert (len(geoembed_actions(qgis_iface)), len(geoembed_toolbars(qgis_iface))) == before


# --- metadata.txt --------------------------------------------------------------------------------


def test_metadata(metadata):
    assert metadata["hasProcessingProvider"].strip().lower() in ("yes", "true")
    assert metadata["qgisMinimumVersion"] == "3.22"
    assert metadata["supportsQt6"].strip().lower() in ("yes", "true")
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"])
    assert metadata["version"] == __about__.__version__
    for key in ("tracker", "repository"):
        assert re.match(r"https://\S+$", metadata[key]), key
    assert len(metadata["about"]) > 40
    assert metadata["name"] and metadata["description"]
    assert (PLUGIN_DIR / metadata["icon"]).is_file()


# --- the Python Processing API ---------------------------------------------------------------------


def test_processing_run_executes_geoembed_load(tile_2024_31n, tmp_path):
    """processing.run() (and runAndLoadResults, batch) call algorithm.run(parameters, context, feedback, {}, False).

    A subclass method named run() would shadow QgsProcessingAlgorithm.run() and break them all.
    """
    import processing

    output = tmp_path / "embeddings.tif"
    results = processing.run("geoembed:load", {"PRODUCT": "aef", "SOURCE": str(tile_2024_31n[1]), "OUTPUT": str(output)})
    assert results["OUTPUT"] == str(output) and output.is_file()


def test_every_algorithm_has_help_and_shared_parts_follow_their_parameters():
    """Each algorithm's help page exists; an algorithm with CLUSTER gets the shared paragraph that explains it."""
    provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
    for algorithm in provider.algorithms():
        text = algorithm.shortHelpString()
        assert len(text) > 200, f"{algorithm.id()} has no help page"
        has_cluster = algorithm.parameterDefinition("CLUSTER") is not None
        assert ("Dask cluster" in text) == has_cluster, algorithm.id()
