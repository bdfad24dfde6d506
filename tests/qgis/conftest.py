"""pytest-qgis tier: Processing initialised once, the GeoEmbed provider registered like qgis_process does it."""

import pytest
from qgis.core import QgsApplication

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


@pytest.fixture()
def geoembed_provider(geoembed_session):
    """The registered provider; re-registers it if a wiring test unloaded the session plugin."""
    registry = QgsApplication.processingRegistry()
    if registry.providerById(PROVIDER_ID) is None:
        geoembed_session.provider = None
        geoembed_session.initProcessing()
    provider = registry.providerById(PROVIDER_ID)
    assert provider is not None, "the GeoEmbed provider could not be registered"
    return provider


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
