"""End-to-end tier: geoembed:load run through `qgis_process.bin` in a subprocess, exactly as a user does.

Every run gets a private QGIS profile (QGIS_CUSTOM_CONFIG_PATH), a private XDG_RUNTIME_DIR (mode 700),
QGIS_PLUGINPATH pointing at build/plugins (where geoembed links to the repository root), the venv's
site-packages on PYTHONPATH (QGIS's embedded Python needs pyarrow from there) and GEOEMBED_CACHE_DIR in a
tmp folder, so neither the user's QGIS profile nor their GeoEmbed cache is touched. Debian's
/usr/bin/qgis_process wrapper is broken on bookworm (it passes --noversioncheck), hence qgis_process.bin.
"""

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests import PLUGINS
from tests.e2e.helpers import output_of

REPO = Path(__file__).resolve().parents[2]
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
TIMEOUT_S = 180


@pytest.fixture(scope="session")
def qgis_env(tmp_path_factory):
    """The environment of every qgis_process run, with geoembed enabled in a throw-away profile."""
    if not os.path.exists(QGIS_PROCESS):
        pytest.fail(f"{QGIS_PROCESS} not found: install the Debian packages qgis and python3-qgis (./dev.sh setup)")
    base = tmp_path_factory.mktemp("qgis-e2e")
    profile, runtime, cache = base / "profile", base / "xdg-runtime", base / "geoembed-cache"
    for folder in (profile, runtime, cache):
        folder.mkdir()
    runtime.chmod(0o700)
    env = {key: value for key, value in os.environ.items() if not key.startswith("QGIS_")}
    purelib = sysconfig.get_paths()["purelib"]
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(PLUGINS),
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        XDG_RUNTIME_DIR=str(runtime),
        PYTHONPATH=os.pathsep.join(p for p in (purelib, os.environ.get("PYTHONPATH")) if p),
        GEOEMBED_CACHE_DIR=str(cache),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    enabled = _run(env, "plugins", "enable", "geoembed")
    # A fresh profile: enabling must work. ("plugins enable" exits 1 when the plugin is already enabled.)
    if enabled.returncode != 0 and "already enabled" not in output_of(enabled):
        pytest.fail(f"qgis_process.bin plugins enable geoembed failed ({enabled.returncode}):\n{output_of(enabled)}")
    return env


@pytest.fixture(scope="session")
def qgis_process(qgis_env):
    """qgis_process(*args, env_extra=None) -> CompletedProcess (text; stdout and stderr captured)."""

    def run(*args, env_extra=None):
        env = dict(qgis_env)
        env.update({key: str(value) for key, value in (env_extra or {}).items()})
        return _run(env, *args)

    return run


def _run(env, *args):
    return subprocess.run(
        [QGIS_PROCESS, *map(str, args)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
