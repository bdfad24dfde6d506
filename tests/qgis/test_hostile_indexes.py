"""Hostile AEF indexes through geoembed:load (issue 13): tile paths that leave the index's own folder or host.

Each row builds a mirror whose aef_index.parquet lists hostile tile paths (or a mirror server that redirects), runs
the algorithm through refusals.assert_refused (one line with the words, nothing written, under 10 s and 1.5 GB),
and checks that the "foreign" server, standing for a host on the user's network, saw no request at all.
The opt-out (ALLOW_PATHS_OUTSIDE_MIRROR, or the GeoEmbed setting behind its default) loads the same index.
"""

import contextlib
import os
from pathlib import Path

import pytest

from geoembed.providers import settings
from tests.support.hostile_index import write_mirror
from tests.support.range_server import RangeServer
from tests.support.redirect_server import RedirectServer

from .refusals import assert_refused, run

EXTENT = "5.98,6.01,44.995,45.005 [EPSG:4326]"  # the 2024 31N (south) and 32N tiles
MARKER = "v1/annual/"
OUTSIDE = ["outside the mirror", "ALLOW_PATHS_OUTSIDE_MIRROR"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path):
    """Each test its own index cache: a test server of a later test may get an earlier one's port, hence its URL,
    and the cache would hand it the earlier test's (fresh, unexpired) index."""
    before = settings.cache_dir()
    settings.set_cache_dir(str(tmp_path / "cache"))
    yield
    settings.set_cache_dir("" if before == str(settings.default_cache_dir()) else before)


@pytest.fixture(scope="module")
def foreign(aef_mirror):
    """A server holding the real tiles, standing for a host the index must not send GeoEmbed to."""
    with RangeServer(aef_mirror) as server:
        yield server


class Hostile:
    """Mirrors with rewritten indexes, local or served, built in a scratch folder; servers stop with the test."""

    def __init__(self, aef_mirror, foreign, scratch, stack):
        self.mirror, self.foreign, self.scratch, self.stack = Path(aef_mirror), foreign, scratch, stack

    def foreign_base(self, host="127.0.0.1"):
        return f"http://{host}:{self.foreign.url.rsplit(':', 1)[1]}/{MARKER}"

    def local(self, rewrite):
        root = self.scratch / "local-mirror"
        write_mirror(root, self.mirror, rewrite)
        return str(root)

    def served(self, rewrite):
        """An http mirror (its own server) whose index lists rewrite(relative, mirror_url)."""
        root = self.scratch / "served-mirror"
        server = self.stack.enter_context(RangeServer(root if root.exists() else _made(root)))
        write_mirror(root, self.mirror, lambda relative: rewrite(relative, server.url))
        return server.url

    def redirecting(self, redirect):
        """An http mirror with the published index whose server answers redirect(path, foreign_url) when not None."""
        root = self.scratch / "redirecting-mirror"
        write_mirror(root, self.mirror, lambda relative: None)
        server = self.stack.enter_context(RedirectServer(root, lambda path: redirect(path, self.foreign.url)))
        return server.url

    def symlinked(self):
        """A local mirror with the published index whose 2024 folder is a link to a folder outside it."""
        source = self.local(lambda relative: None)
        (Path(source) / MARKER / "2024").symlink_to(self.mirror / MARKER / "2024", target_is_directory=True)
        return source

    def climb(self):
        """The relative way from the local mirror's v1/annual/ to the real mirror's (starts with ..)."""
        return os.path.relpath(self.mirror / MARKER, self.scratch / "local-mirror" / MARKER).replace(os.sep, "/")


def _made(folder):
    folder.mkdir(parents=True)
    return folder


@pytest.fixture()
def hostile(provider_ready, aef_mirror, foreign, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    foreign.reset()
    with contextlib.ExitStack() as stack:
        yield Hostile(aef_mirror, foreign, scratch, stack)


def _load(source, o, **more):
    return {"PRODUCT": "aef", "SOURCE": source, "EXTENT": EXTENT, "YEAR": 2024, "OUTPUT": str(o / "e.tif"), **more}


# --- the table ----------------------------------------------------------------------------------------------
# (algorithm, case, parameters built from (hostile, output folder), words the one-line message must contain)

HOSTILE_INDEXES = [
    (
        "load",
        "other host",
        lambda h, o: _load(h.served(lambda r, url: h.foreign_base("localhost") + r), o),
        OUTSIDE + ["another host"],
    ),
    (
        "load",
        "other port",
        lambda h, o: _load(h.served(lambda r, url: h.foreign_base() + r), o),
        OUTSIDE + ["another port"],
    ),
    (
        "load",
        "other scheme",
        lambda h, o: _load(h.served(lambda r, url: url.replace("http:", "https:") + "/" + MARKER + r), o),
        OUTSIDE + ["another scheme"],
    ),
    (
        "load",
        "file:// URL",
        lambda h, o: _load(h.local(lambda r: (h.mirror / MARKER / r).as_uri()), o),
        OUTSIDE + ["file://"],
    ),
    (
        "load",
        "absolute local path",
        lambda h, o: _load(h.local(lambda r: str(h.mirror / MARKER / r)), o),
        OUTSIDE + ["absolute path"],
    ),
    (
        "load",
        "'..' out of a local mirror",
        lambda h, o: _load(h.local(lambda r: h.climb() + "/" + r), o),
        OUTSIDE + ["'..' leaves"],
    ),
    (
        "load",
        "percent-encoded '..' on an http mirror",
        lambda h, o: _load(h.served(lambda r, url: "%2e%2e/%2E%2E/%2e%2e/" + r), o),
        OUTSIDE + ["'..' leaves"],
    ),
    (
        "load",
        "double-encoded '..' and slashes",
        lambda h, o: _load(h.served(lambda r, url: "..%252f..%252f..%252f" + r), o),
        OUTSIDE + ["'..' leaves"],
    ),
    (
        "load",
        "backslashes with '..'",
        lambda h, o: _load(h.local(lambda r: (h.climb() + "/" + r).replace("/", "\\")), o),
        OUTSIDE + ["'..' leaves"],
    ),
    (
        "load",
        "symlink leaving the mirror",
        lambda h, o: _load(h.symlinked(), o),
        OUTSIDE + ["symbolic link"],
    ),
    (
        "load",
        "/vsicurl/ path",
        lambda h, o: _load(h.local(lambda r: "/vsicurl/" + h.foreign_base() + r), o),
        OUTSIDE + ["GDAL virtual path"],
    ),
    (
        "load",
        "/vsizip/ path",
        lambda h, o: _load(h.local(lambda r: "/vsizip/" + str(h.mirror / "tiles.zip") + "/" + r), o),
        OUTSIDE + ["GDAL virtual path"],
    ),
    (
        "load",
        "userinfo trick",
        lambda h, o: _load(h.served(lambda r, url: url + "@" + h.foreign_base("localhost")[7:] + r), o),
        OUTSIDE + ["user name"],
    ),
    (
        "load",
        "same host, path outside the mirror's",
        lambda h, o: _load(h.served(lambda r, url: url + "/private/" + r), o),
        OUTSIDE + ["outside the mirror's"],
    ),
    (
        "load",
        "http URL in a local mirror",
        lambda h, o: _load(h.local(lambda r: h.foreign_base() + r), o),
        OUTSIDE + ["local folder"],
    ),
    (
        "load",
        "tile redirected to another host",
        lambda h, o: _load(h.redirecting(lambda path, far: far + path if path.endswith(".tiff") else None), o),
        ["redirects to another host", "ALLOW_PATHS_OUTSIDE_MIRROR"],
    ),
    (
        "load",
        "index redirected to another host",
        lambda h, o: _load(h.redirecting(lambda path, far: far + path), o),
        ["redirects to another host", "ALLOW_PATHS_OUTSIDE_MIRROR"],
    ),
    (
        "load",
        "explicit ALLOW_PATHS_OUTSIDE_MIRROR=False",
        lambda h, o: _load(h.served(lambda r, url: h.foreign_base() + r), o, ALLOW_PATHS_OUTSIDE_MIRROR=False),
        OUTSIDE + ["another port"],
    ),
]


@pytest.mark.parametrize(
    ("algorithm", "case", "build", "words"), HOSTILE_INDEXES, ids=[f"{a}: {c}" for a, c, _, _ in HOSTILE_INDEXES]
)
def test_hostile_index_is_refused_in_one_line_without_a_foreign_request(hostile, tmp_path, algorithm, case, build, words):
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(algorithm, build(hostile, out), words, out, case)
    assert hostile.foreign.requests == [], f"{case}: the foreign server was asked {hostile.foreign.requests}"


def test_the_table_has_enough_rows():
    assert len([row for row in HOSTILE_INDEXES if row[0] == "load"]) >= 12


def test_an_analysis_input_with_a_hostile_index_sends_no_request(hostile, tmp_path):
    """Analysis algorithms take a mirror folder as INPUT without an EXTENT: refused before any tile path is used."""
    out = tmp_path / "out"
    out.mkdir()
    source = hostile.local(lambda r: hostile.foreign_base() + r)
    assert_refused("pca", {"INPUT": source, "OUTPUT": str(out / "pca.tif")}, ["EXTENT"], out, "pca on a hostile mirror")
    assert hostile.foreign.requests == []


# --- the opt-out -------------------------------------------------------------------------------------------


@pytest.fixture()
def setting_restored():
    before = settings.allow_paths_outside_mirror()
    yield
    settings.set_allow_paths_outside_mirror(before)


def _tiles_read(server):
    return [path for _, path, _ in server.requests if path.endswith(".tiff")]


def test_the_parameter_lets_the_same_index_load(hostile, tmp_path):
    source = hostile.served(lambda r, url: hostile.foreign_base() + r)
    result = run("load", _load(source, tmp_path, ALLOW_PATHS_OUTSIDE_MIRROR=True))
    assert os.path.isfile(result["OUTPUT"])
    assert _tiles_read(hostile.foreign)


def test_the_setting_is_the_parameters_default(hostile, tmp_path, setting_restored):
    settings.set_allow_paths_outside_mirror(True)
    source = hostile.local(lambda r: str(hostile.mirror / MARKER / r))
    result = run("load", _load(source, tmp_path))
    assert os.path.isfile(result["OUTPUT"])
    settings.set_allow_paths_outside_mirror(False)
    out = tmp_path / "refused"
    out.mkdir()
    assert_refused("load", _load(source, out), OUTSIDE, out, "setting off again")


def test_the_parameter_is_advanced_and_off_by_default(provider_ready, setting_restored):
    from qgis.core import QgsApplication

    from geoembed.qgis_compat import PARAMETER_ADVANCED

    settings.set_allow_paths_outside_mirror(False)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geoembed:load")
    definition = algorithm.parameterDefinition("ALLOW_PATHS_OUTSIDE_MIRROR")
    assert definition.type() == "boolean" and definition.defaultValue() is False
    assert definition.flags() & PARAMETER_ADVANCED


def test_the_published_layout_still_loads_from_a_served_mirror(hostile, tmp_path, aef_mirror):
    """The fixture index lists s3:// URIs like the real one: read from the mirror itself, no opt-out needed."""
    with RangeServer(aef_mirror) as mirror:
        result = run("load", _load(mirror.url, tmp_path))
        assert os.path.isfile(result["OUTPUT"]) and _tiles_read(mirror)
    assert hostile.foreign.requests == []


def test_the_settings_tab_checkbox_saves_the_setting(provider_ready, setting_restored):
    from qgis.PyQt.QtWidgets import QLabel

    from geoembed.ui.settings_panel import SettingsPanel

    class Dock:
        status = QLabel()

    settings.set_allow_paths_outside_mirror(False)
    panel = SettingsPanel(Dock())
    assert panel.allow_outside.text() == "Let mirror indexes point outside the mirror"
    assert not panel.allow_outside.isChecked()
    panel.allow_outside.setChecked(True)
    panel.save()
    assert settings.allow_paths_outside_mirror() is True
    assert SettingsPanel(Dock()).allow_outside.isChecked()
