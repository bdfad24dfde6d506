"""Plugin facts read from metadata.txt, the single source of truth for the version."""

import configparser
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent

_metadata = configparser.ConfigParser(interpolation=None)
_metadata.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")

__title__ = _metadata.get("general", "name")
__version__ = _metadata.get("general", "version")
__uri_tracker__ = _metadata.get("general", "tracker")
__uri_repository__ = _metadata.get("general", "repository")
__qgis_minimum_version__ = _metadata.get("general", "qgisMinimumVersion")
