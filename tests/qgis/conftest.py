"""pytest-qgis tier: Processing initialised once, the GeoEmbed provider registered like qgis_process does it."""

import pytest
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QEvent

from .helpers import RUNNERS, case_setup, settle

PROVIDER_ID = "geoembed"


def geoembed_providers():
    """Registered providers with the GeoEmbed id (a duplicate registration would show up as two)."""
    return [p for p in QgsApplication.processingRegistry().providers() if p.id() == PROVIDER_ID]


@pytest.fixture(scope="session")
def geoembed_session(qgis_processing):  # noqa: ARG001 - initialises the Processing framework
    """The plugin object that owns the session's provider: classFactory(None) + initProcessing(), as in qgis_process."""
    from geoembed import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    yield plugin
    plugin.unload()


def registered_provider(session_plugin):
    """The GeoEmbed provider, registered again first if a wiring test unloaded the session plugin."""
    registry = QgsApplication.processingRegistry()
    if registry.providerById(PROVIDER_ID) is None:
        session_plugin.provider = None
        session_plugin.initProcessing()
    provider = registry.providerById(PROVIDER_ID)
    assert provider is not None, "the GeoEmbed provider could not be registered"
    return provider


@pytest.fixture(autouse=True)
def geoembed_provider(geoembed_session):
    """The registered provider, before every test."""
    return registered_provider(geoembed_session)


@pytest.fixture(scope="module")
def provider_ready(geoembed_session):
    """The registered provider, for module-scoped fixtures that run algorithms (they set up before the autouse one)."""
    return registered_provider(geoembed_session)


@pytest.fixture(scope="session")
def annual_dir(aef_mirror):
    return aef_mirror / "v1" / "annual"


@pytest.fixture(scope="session")
def index_file(annual_dir):
    return annual_dir / "aef_index.parquet"


@pytest.fixture(scope="session")
def tile_2024_31n(annual_dir, aef_specs):
    """(spec, path) of the 2024 31N tile with the nodata box."""
    spec = next(s for s in aef_specs if s.year == 2024 and s.zone == "31N" and s.nodata_boxes)
    return spec, annual_dir / spec.relative_path


@pytest.fixture(scope="session")
def load_once(tmp_path_factory):
    """load(parameters, runner_name) -> (output path, results); each distinct run happens once per session."""
    cache = {}

    def load(parameters, runner_name):
        key = (tuple(sorted((k, str(v)) for k, v in parameters.items())), runner_name)
        if key not in cache:
            output = tmp_path_factory.mktemp("load") / "embeddings.tif"
            try:
                cache[key] = (output, RUNNERS[runner_name]({**parameters, "OUTPUT": str(output)}), None)
            except Exception as exc:  # remembered, so every test of this run reports the same failure
                cache[key] = (None, None, exc)
        output, results, exc = cache[key]
        if exc is not None:
            raise exc
        return output, results

    return load


@pytest.fixture()
def load_case(load_once, aef_mirror, aef_specs, tile_2024_31n):
    """load_case(case, product, runner): run it (once per session) and open the OUTPUT as a QgsRasterLayer.

    Called inside the tests, so that a run that raises fails the test instead of erroring its setup.
    """

    def load(case, product, runner):
        parameters, specs, crs, extent = case_setup(case, aef_mirror, aef_specs, tile_2024_31n)
        output, results = load_once({"PRODUCT": product, **parameters}, runner)
        layer = QgsRasterLayer(str(output), "embeddings", "gdal")
        assert layer.isValid(), f"QGIS cannot open {output}"
        return {"layer": layer, "output": output, "results": results, "specs": specs, "crs": crs, "extent": extent}

    return load


@pytest.fixture()
def project():
    """The current project; layers a test adds to it are removed afterwards."""
    project = QgsProject.instance()
    before = set(project.mapLayers())
    yield project
    for layer_id in set(project.mapLayers()) - before:
        project.removeMapLayer(layer_id)


@pytest.fixture(scope="session", autouse=True)
def layer_tree_view(qgis_iface):
    """A real layer tree view for pytest-qgis's stand-in iface (its own is a mock): Processing's result handling on
    QGIS 3.44 passes iface.layerTreeView() to C++, which refuses anything else, as runAndLoadResults does in QGIS."""
    from qgis.core import QgsLayerTreeModel
    from qgis.gui import QgsLayerTreeView

    view = QgsLayerTreeView()
    model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot())
    view.setModel(model)
    qgis_iface.layerTreeView = lambda: view
    yield view


# --- the dock panel, as a user opens it (tests/qgis/test_dock*.py) ---------------------------------


@pytest.fixture()
def iface(qgis_iface, monkeypatch):
    """pytest-qgis's iface with the raster-menu and dock calls real QGIS has (recorded in iface.calls)."""
    calls = []
    for method in ("addPluginToRasterMenu", "removePluginRasterMenu"):
        monkeypatch.setattr(qgis_iface, method, lambda menu, action, m=method: calls.append((m, action)), raising=False)
    monkeypatch.setattr(qgis_iface, "removeDockWidget", lambda dock: calls.append(("removeDockWidget", dock)), raising=False)
    monkeypatch.setattr(qgis_iface, "addDockWidget", lambda area, dock: calls.append(("addDockWidget", dock)))
    qgis_iface.calls = calls
    for level in qgis_iface.messageBar().messages.values():
        level.clear()
    return qgis_iface


@pytest.fixture()
def saved_settings():
    """Whatever a test stores in the GeoEmbed settings is put back afterwards."""
    from geoembed.providers import settings

    before = (settings.cache_dir(), settings.output_dir(), settings.aef_mirror(), settings.crs_policy())
    yield
    settings.set_cache_dir("" if before[0] == str(settings.default_cache_dir()) else before[0])
    settings.set_output_dir(before[1])
    settings.set_aef_mirror(before[2])
    settings.set_crs_policy(before[3])


@pytest.fixture()
def plugin(iface, saved_settings, tmp_path):
    """The plugin started in QGIS (outputs into tmp_path); unloaded afterwards with every layer removed."""
    from geoembed import classFactory
    from geoembed.providers import settings

    settle()
    QgsProject.instance().removeAllMapLayers()
    settings.set_output_dir(str(tmp_path))
    plugin = classFactory(iface)
    plugin.initGui()
    yield plugin
    settle()
    plugin.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QgsProject.instance().removeAllMapLayers()
    settle()


@pytest.fixture()
def dock(plugin):
    return plugin.show_panel(True)
