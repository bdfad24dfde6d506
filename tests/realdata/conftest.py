"""Real-data tier: runs under pytest-qgis (QgsRasterLayer in this process) and reuses the e2e tier's qgis_process.

Every test here skips when the real files are absent (a clone without ../shared/realdata).
"""

import pytest

from tests.e2e.conftest import qgis_env, qgis_process  # noqa: F401 - the e2e tier's session fixtures, reused here
from tests.realdata.helpers import missing_reason, realdata_folder


@pytest.fixture(scope="session", autouse=True)
def realdata_dir():
    """The folder of real files; autouse and session-wide, so a missing folder skips before qgis_process starts."""
    folder = realdata_folder()
    if not folder.is_dir():
        pytest.skip(missing_reason(folder))
    return folder
