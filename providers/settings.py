"""User settings kept with QgsSettings: the cache folder, the AlphaEarth mirror root, whether a mirror's index may
point outside the mirror, the output CRS policy.

The Processing algorithms read them too, so the toolbox, the dock panel and qgis_process behave alike.
"""

import os

from qgis.core import QgsSettings

from ..loaders.remote.locations import default_cache_dir

PREFIX = "geoembed/"
CRS_POLICIES = {
    "utm": "UTM zone of the extent's centre",
    "project": "the project's CRS",
}


def _get(key, default=""):
    return QgsSettings().value(PREFIX + key, default, type=str) or default


def _set(key, value):
    QgsSettings().setValue(PREFIX + key, value or "")


def cache_dir():
    """Folder for cached indexes and manifests (default: GEOEMBED_CACHE_DIR or the XDG cache)."""
    return _get("cache_dir") or str(default_cache_dir())


def set_cache_dir(path):
    _set("cache_dir", path)


def aef_mirror():
    """Root of an AlphaEarth mirror used when SOURCE is empty ('' = the public copy)."""
    return _get("aef_mirror")


def set_aef_mirror(location):
    _set("aef_mirror", location.strip() if location else "")


def allow_paths_outside_mirror():
    """Whether tile paths in a mirror's index may lead outside the mirror (another host, any local file); off by
    default, see loaders/remote/confinement.py. The default of geoembed:load's ALLOW_PATHS_OUTSIDE_MIRROR."""
    return QgsSettings().value(PREFIX + "allow_paths_outside_mirror", False, type=bool)


def set_allow_paths_outside_mirror(allowed):
    QgsSettings().setValue(PREFIX + "allow_paths_outside_mirror", bool(allowed))


def output_dir():
    """Folder where the dock panel writes its outputs ('' = Processing's temporary folder, emptied when QGIS quits)."""
    return _get("output_dir")


def set_output_dir(path):
    _set("output_dir", path)


def unique_path(folder, stem, extension):
    """folder/stem.extension, or folder/stem_2.extension, ... : a name not taken yet."""
    candidate, number = os.path.join(folder, f"{stem}.{extension}"), 1
    while os.path.exists(candidate):
        number += 1
        candidate = os.path.join(folder, f"{stem}_{number}.{extension}")
    return candidate


def crs_policy():
    policy = _get("crs_policy", "utm")
    return policy if policy in CRS_POLICIES else "utm"


def set_crs_policy(policy):
    if policy not in CRS_POLICIES:
        raise ValueError(f"unknown CRS policy {policy!r}")
    _set("crs_policy", policy)
