"""GeoEmbed's test suite.

The repository root is the plugin. Tests import it as the package `geoembed`, the name QGIS gives it, through
build/plugins/geoembed, a link to the root that is made here when missing (./dev.sh setup makes it too), with
build/plugins put first on sys.path. QGIS_PLUGINPATH points at the same folder for qgis_process.
"""

import contextlib
import importlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "build" / "plugins"


def _link_plugin():
    link = PLUGINS / "geoembed"
    if link.resolve() == REPO:
        return
    PLUGINS.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it meanwhile
        os.symlink(REPO, link, target_is_directory=True)


_link_plugin()
# Python may have looked for build/plugins before it existed (it was on PYTHONPATH) and remembered it as empty.
sys.path_importer_cache.pop(str(PLUGINS), None)
importlib.invalidate_caches()
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
