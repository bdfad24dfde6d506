"""Real-data tier: runs under pytest-qgis (QgsRasterLayer in this process) and reuses the e2e tier's qgis_process.

Every test here skips when the real files are absent (a clone without ../shared/realdata).
"""

import pytest

from tests.e2e.conftest import qgis_env, qgis_process  # noqa: F401 - the e2e tier's session fixtures, reused here
from tests.e2e.helpers import json_of, load_args
from tests.realdata.helpers import missing_reason, open_layer, realdata_folder


@pytest.fixture(scope="session", autouse=True)
def realdata_dir():
    """The folder of real files; autouse and session-wide, so a missing folder skips before qgis_process starts."""
    folder = realdata_folder()
    if not folder.is_dir():
        pytest.skip(missing_reason(folder))
    return folder


@pytest.fixture(scope="module")
def loaded(qgis_process, source, tmp_path_factory):  # noqa: F811 - the imported fixture, requested
    """(completed run, output path) of geoembed:load PRODUCT=auto on the module's real file (its `source`), run once."""
    output = tmp_path_factory.mktemp("real") / "out.tif"
    return qgis_process(*load_args(PRODUCT="auto", SOURCE=source, OUTPUT=output)), output


@pytest.fixture()
def layer(loaded):
    """The loaded output as a QGIS raster layer (the run must have succeeded)."""
    completed, output = loaded
    json_of(completed)
    return open_layer(output)
