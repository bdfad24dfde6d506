"""Tile paths in an AEF index stay inside the index's own folder or host (loaders/remote/confinement.py).

The resolver on good and hostile paths, local and http; then whole loads against test servers where the index
points at another host or port, an absolute path, '..', or where the mirror redirects to another host: each is
refused in one line and the "foreign" server (a second server standing for a host on the user's network) sees no
request at all. With the opt-out, the same index loads.
"""

import os
from pathlib import Path

import pytest

from geoembed.loaders.errors import GeoEmbedError, RemoteError
from geoembed.loaders.load import LoadRequest, run
from geoembed.loaders.remote.confinement import OutsideMirrorError, resolve, same_origin
from geoembed.loaders.remote.http_client import HttpClient
from tests.support.hostile_index import write_mirror
from tests.support.range_server import RangeServer
from tests.support.redirect_server import RedirectServer
from tests.unit.helpers import QuietLog, assert_one_line

MARKER = "v1/annual/"
EXTENT = (5.98, 44.995, 6.01, 45.005)  # the 2024 31N (south) and 32N tiles
TILE = "2024/31N/x1de979882fc62834-0000000000-0000000000.tiff"
HTTP_INDEX = "http://127.0.0.1:8765/mirror/v1/annual/aef_index.parquet"
HTTP_BASE = "http://127.0.0.1:8765/mirror/v1/annual/"


# --- the resolver: http mirror ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        (TILE, HTTP_BASE + TILE),
        ("./" + TILE, HTTP_BASE + TILE),
        ("2024//31N/./" + TILE.split("/")[-1], HTTP_BASE + TILE),
        ("2024/xx/../31N/" + TILE.split("/")[-1], HTTP_BASE + TILE),
        ("2024\\31N\\" + TILE.split("/")[-1], HTTP_BASE + TILE),
        (HTTP_BASE + TILE, HTTP_BASE + TILE),
        ("HTTP://127.0.0.1:8765/mirror/v1/annual/" + TILE, HTTP_BASE + TILE),
        ("s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/" + TILE, HTTP_BASE + TILE),
        ("gs://alphaearth_foundations/satellite_embedding/v1/annual/" + TILE, HTTP_BASE + TILE),
        ("2024%2f31N%2f" + TILE.split("/")[-1], HTTP_BASE + TILE),
    ],
)
def test_paths_inside_an_http_mirror_resolve_under_it(path, expected):
    assert resolve(HTTP_INDEX, path, MARKER) == expected


def test_the_published_index_layout_keeps_working():
    """The public copy's index lists s3:// URIs of its own bucket: read from the copy the index came from."""
    index = "https://data.source.coop/tge-labs/aef/v1/annual/aef_index.parquet"
    s3 = "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/" + TILE
    assert resolve(index, s3, MARKER) == "https://data.source.coop/tge-labs/aef/v1/annual/" + TILE
    https = "https://data.source.coop/tge-labs/aef/v1/annual/" + TILE
    assert resolve(index, https, MARKER) == https
    assert resolve(index, "https://DATA.source.coop:443/tge-labs/aef/v1/annual/" + TILE, MARKER).endswith(TILE)


HOSTILE_FOR_HTTP = [
    ("other host", "http://localhost:8765/mirror/v1/annual/" + TILE, "another host"),
    ("other host, same prefix", "http://10.0.0.1:8765/mirror/v1/annual/" + TILE, "another host"),
    ("other port", "http://127.0.0.1:8766/mirror/v1/annual/" + TILE, "another port"),
    ("default port", "http://127.0.0.1/mirror/v1/annual/" + TILE, "another port"),
    ("other scheme", "https://127.0.0.1:8765/mirror/v1/annual/" + TILE, "another scheme"),
    ("file url", "file:///etc/passwd", "scheme file"),
    ("ftp url", "ftp://127.0.0.1:8765/mirror/v1/annual/" + TILE, "scheme ftp"),
    ("absolute path", "/etc/passwd", "absolute path"),
    ("protocol-relative", "//evil.example/" + TILE, "absolute path"),
    ("windows drive", "C:\\Windows\\win.ini", "absolute path"),
    ("dot-dot", "../../../secret.tiff", "'..' leaves"),
    ("dot-dot after a folder", "2024/../../" + TILE, "'..' leaves"),
    ("encoded dot-dot", "2024/%2e%2e/%2E%2E/" + TILE, "'..' leaves"),
    ("double-encoded dot-dot", "2024/%252e%252e/%252e%252e/" + TILE, "'..' leaves"),
    ("encoded slash", "..%2f..%2fadmin", "'..' leaves"),
    ("backslash dot-dot", "2024\\..\\..\\" + TILE, "'..' leaves"),
    ("url leaving the prefix", "http://127.0.0.1:8765/mirror/v1/" + TILE, "outside the mirror's"),
    ("url with dot-dot", HTTP_BASE + "../../admin", "outside the mirror's"),
    ("url with encoded dot-dot", HTTP_BASE + "%2e%2e/%2e%2e/admin", "outside the mirror's"),
    ("prefix lookalike", "http://127.0.0.1:8765/mirror/v1/annual-evil/" + TILE, "outside the mirror's"),
    ("userinfo", "http://127.0.0.1:8765@evil.example/mirror/v1/annual/" + TILE, "user name"),
    ("userinfo to the mirror", "http://user@127.0.0.1:8765/mirror/v1/annual/" + TILE, "user name"),
    ("backslash userinfo", "http://evil.example\\@127.0.0.1:8765/mirror/v1/annual/" + TILE, "another host"),
    ("encoded host", "http://127.0.0.1%3a8766/mirror/v1/annual/" + TILE, "another port"),
    ("bad port", "http://127.0.0.1:99999/mirror/v1/annual/" + TILE, "malformed"),
    ("vsicurl", "/vsicurl/http://evil.example/x.tiff", "GDAL virtual path"),
    ("vsizip", "/vsizip//tmp/x.zip/x.tiff", "GDAL virtual path"),
    ("encoded vsicurl", "%2fvsicurl%2fhttp://evil.example/x.tiff", "GDAL virtual path"),
    ("s3 with dot-dot", "s3://bucket/v1/annual/../../" + TILE, "'..' leaves"),
    ("newline", "2024/31N/x.tiff\nhttp://evil", "control characters"),
    ("the mirror itself", "2024/..", "names the mirror itself"),
    ("a vrt", "2024/31N/x.vrt", "VRT"),
]


@pytest.mark.parametrize("case, path, reason", HOSTILE_FOR_HTTP, ids=[case for case, _, _ in HOSTILE_FOR_HTTP])
def test_hostile_paths_are_refused_for_an_http_mirror(case, path, reason):
    from geoembed.loaders.products.aef import resolve_index_path

    with pytest.raises(OutsideMirrorError) as info:
        resolve_index_path(HTTP_INDEX, path)
    message = assert_one_line(info.value)
    assert reason in message and "outside the mirror" in message and "ALLOW_PATHS_OUTSIDE_MIRROR" in message, message
    assert HTTP_BASE.rstrip("/") in message


# --- the resolver: local mirror -----------------------------------------------------------------------


@pytest.fixture
def local_mirror(tmp_path):
    annual = tmp_path / "mirror" / "v1" / "annual"
    (annual / "2024" / "31N").mkdir(parents=True)
    (annual / TILE).write_bytes(b"tile")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.tiff").write_bytes(b"secret")
    return annual


def test_paths_inside_a_local_mirror_resolve_under_it(local_mirror):
    index = str(local_mirror / "aef_index.parquet")
    expected = os.path.join(str(local_mirror), *TILE.split("/"))
    for path in (TILE, "./" + TILE, TILE.replace("/", "\\"), "s3://bucket/aef/v1/annual/" + TILE, "2024/x/../31N/" + TILE[9:]):
        assert os.path.normpath(resolve(index, path, MARKER)) == os.path.normpath(expected), path


def test_a_symlink_inside_the_mirror_is_followed(local_mirror):
    (local_mirror / "2025").symlink_to(local_mirror / "2024")
    index = str(local_mirror / "aef_index.parquet")
    assert resolve(index, TILE.replace("2024", "2025"), MARKER).endswith(TILE.replace("2024", "2025"))


def test_a_mirror_reached_through_a_symlink_still_resolves(local_mirror, tmp_path):
    link = tmp_path / "linked-mirror"
    link.symlink_to(local_mirror, target_is_directory=True)
    assert resolve(str(link / "aef_index.parquet"), TILE, MARKER) == os.path.join(str(link), *TILE.split("/"))


@pytest.mark.parametrize(
    "case, path, reason",
    [
        ("absolute path", None, "absolute path"),
        ("dot-dot", "../../../outside/secret.tiff", "'..' leaves"),
        ("encoded dot-dot", "%2e%2e/%2e%2e/%2e%2e/outside/secret.tiff", "'..' leaves"),
        ("backslash dot-dot", "..\\..\\..\\outside\\secret.tiff", "'..' leaves"),
        ("file url", "file:///etc/passwd", "scheme file"),
        ("http url", "http://127.0.0.1:1/x.tiff", "local folder"),
        ("symlink", "escape/secret.tiff", "symbolic link"),
        ("symlinked file", "2024/31N/link.tiff", "symbolic link"),
        ("vsicurl", "/vsicurl/http://127.0.0.1:1/x.tiff", "GDAL virtual path"),
    ],
)
def test_hostile_paths_are_refused_for_a_local_mirror(local_mirror, tmp_path, case, path, reason):
    (local_mirror / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    (local_mirror / "2024" / "31N" / "link.tiff").symlink_to(tmp_path / "outside" / "secret.tiff")
    path = path or str(tmp_path / "outside" / "secret.tiff")
    with pytest.raises(OutsideMirrorError) as info:
        resolve(str(local_mirror / "aef_index.parquet"), path, MARKER)
    message = assert_one_line(info.value)
    assert reason in message and "ALLOW_PATHS_OUTSIDE_MIRROR" in message, message


def test_the_opt_out_resolves_as_listed(local_mirror, tmp_path):
    index = str(local_mirror / "aef_index.parquet")
    absolute = str(tmp_path / "outside" / "secret.tiff")
    assert resolve(index, absolute, MARKER, allow_outside=True) == absolute
    assert resolve(index, "http://10.0.0.1/x.tiff", MARKER, allow_outside=True) == "http://10.0.0.1/x.tiff"
    assert os.path.realpath(resolve(index, "../../../outside/secret.tiff", MARKER, allow_outside=True)) == os.path.realpath(
        absolute
    )


def test_an_empty_path_says_the_index_is_damaged(local_mirror):
    with pytest.raises(GeoEmbedError, match="damaged"):
        resolve(str(local_mirror / "aef_index.parquet"), "", MARKER)


def test_same_origin():
    assert same_origin("http://a:1/x", "HTTP://A:1/y/z")
    assert same_origin("https://a/x", "https://a:443/y")
    assert not same_origin("http://a:1/x", "http://a:2/x")
    assert not same_origin("http://a/x", "https://a/x")
    assert not same_origin("http://a/x", "http://a@b/x")
    assert not same_origin("http://a/x", "http://user@a/x")


# --- whole loads against servers -------------------------------------------------------------------------


@pytest.fixture
def foreign(aef_mirror):
    """A second server holding the real tiles, standing for a host the index must not send GeoEmbed to."""
    with RangeServer(aef_mirror) as server:
        yield server


def _load(source, out, allow=False):
    request = LoadRequest(
        output=str(out / "e.tif"),
        product="aef",
        source=str(source),
        extent=EXTENT,
        year=2024,
        cache_dir=str(out.parent / "cache"),
        allow_paths_outside_mirror=allow,
    )
    return run(request, log=QuietLog())


def _refused(source, out, *words):
    with pytest.raises(GeoEmbedError) as info:
        _load(source, out)
    message = assert_one_line(info.value)
    assert all(word in message for word in words), message
    assert not out.exists() or list(out.iterdir()) == []
    return message


def _foreign_url(server, host="127.0.0.1"):
    port = server.url.rsplit(":", 1)[1]
    return f"http://{host}:{port}/{MARKER}"


@pytest.mark.parametrize("host, reason", [("127.0.0.1", "another port"), ("localhost", "another host")])
def test_an_http_index_pointing_at_another_host_or_port_is_refused_before_any_request(
    aef_mirror, foreign, tmp_path, host, reason
):
    root = tmp_path / "hostile"
    write_mirror(root, aef_mirror, lambda relative: _foreign_url(foreign, host) + relative)
    with RangeServer(root) as mirror:
        _refused(mirror.url, tmp_path / "out", "outside the mirror", reason, "ALLOW_PATHS_OUTSIDE_MIRROR")
        assert foreign.requests == []
        assert not any(path.endswith(".tiff") for _, path, _ in mirror.requests)
        _load(mirror.url, tmp_path / "out", allow=True)  # the opt-out: the tiles come from the other server
    assert any(path.endswith(".tiff") for _, path, _ in foreign.requests)


def test_a_local_index_pointing_at_a_server_is_refused(aef_mirror, foreign, tmp_path):
    write_mirror(tmp_path / "hostile", aef_mirror, lambda relative: _foreign_url(foreign) + relative)
    _refused(tmp_path / "hostile", tmp_path / "out", "local folder")
    assert foreign.requests == []
    _load(tmp_path / "hostile", tmp_path / "out", allow=True)
    assert foreign.requests


def test_absolute_paths_in_a_local_index_are_refused(aef_mirror, tmp_path):
    write_mirror(tmp_path / "hostile", aef_mirror, lambda relative: str(Path(aef_mirror) / MARKER / relative))
    _refused(tmp_path / "hostile", tmp_path / "out", "absolute path", str(tmp_path / "hostile"))
    assert _load(tmp_path / "hostile", tmp_path / "out", allow=True).output


def test_dot_dot_out_of_a_local_mirror_is_refused(aef_mirror, tmp_path):
    annual = tmp_path / "hostile" / "v1" / "annual"
    climb = os.path.relpath(Path(aef_mirror) / MARKER, annual)
    assert climb.startswith("..")
    write_mirror(tmp_path / "hostile", aef_mirror, lambda relative: climb.replace(os.sep, "/") + "/" + relative)
    _refused(tmp_path / "hostile", tmp_path / "out", "'..' leaves")
    assert _load(tmp_path / "hostile", tmp_path / "out", allow=True).output


def test_a_symlink_out_of_a_local_mirror_is_refused(aef_mirror, tmp_path):
    annual = write_mirror(tmp_path / "hostile", aef_mirror, lambda relative: None)  # the published s3:// paths
    (annual / "2024").symlink_to(Path(aef_mirror) / MARKER / "2024", target_is_directory=True)
    _refused(tmp_path / "hostile", tmp_path / "out", "symbolic link")
    assert _load(tmp_path / "hostile", tmp_path / "out", allow=True).output


def test_every_path_is_checked_before_the_first_tile_is_read(aef_mirror, foreign, tmp_path):
    """One good row and one hostile row in the extent: the good tile is not read either."""
    root = tmp_path / "hostile"

    def rewrite(relative):
        return _foreign_url(foreign) + relative if "/32N/" in relative else relative

    write_mirror(root, aef_mirror, rewrite)
    (root / MARKER / "2024").symlink_to(Path(aef_mirror) / MARKER / "2024", target_is_directory=True)  # served over http
    with RangeServer(root) as mirror:
        _refused(mirror.url, tmp_path / "out", "another port")
        assert [path for _, path, _ in mirror.requests if not path.endswith(".parquet")] == []
    assert foreign.requests == []


def test_a_redirect_to_another_host_is_refused_before_it_is_followed(aef_mirror, foreign, tmp_path):
    write_mirror(tmp_path / "hostile", aef_mirror, lambda relative: None)

    def to_foreign(path):
        return foreign.url + path if path.endswith(".tiff") else None

    with RedirectServer(tmp_path / "hostile", to_foreign) as mirror:
        message = _refused(mirror.url, tmp_path / "out", "redirects to another host", foreign.url)
        assert "ALLOW_PATHS_OUTSIDE_MIRROR" in message
        assert foreign.requests == []
        _load(mirror.url, tmp_path / "out", allow=True)  # the opt-out follows the redirect (requests and GDAL alike)
    assert any(path.endswith(".tiff") for _, path, _ in foreign.requests)


def test_a_redirect_of_the_index_to_another_host_is_refused(aef_mirror, foreign, tmp_path):
    with RedirectServer(tmp_path, lambda path: foreign.url + path) as mirror:
        _refused(mirror.url + "/" + MARKER + "aef_index.parquet", tmp_path / "out", "redirects to another host")
    assert foreign.requests == []


def test_a_redirect_on_the_same_host_is_followed(aef_mirror, tmp_path):
    """Tiles listed under alias/ are redirected to their real place on the same server."""
    write_mirror(tmp_path / "mirror", aef_mirror, lambda relative: "alias/" + relative)
    (tmp_path / "mirror" / MARKER / "2024").symlink_to(Path(aef_mirror) / MARKER / "2024", target_is_directory=True)

    def alias(path):
        return path.replace("/alias/", "/", 1) if "/alias/" in path else None

    with RedirectServer(tmp_path / "mirror", alias) as mirror:
        assert _load(mirror.url, tmp_path / "out").output
    assert any("/alias/" in path for _, path, _ in mirror.requests)


def test_the_client_refuses_cross_host_redirects_only_when_asked(aef_mirror, foreign, tmp_path):
    with RedirectServer(aef_mirror, lambda path: foreign.url + path) as mirror:
        url = mirror.url + "/" + MARKER + "aef_index.parquet"
        with pytest.raises(RemoteError) as info:
            HttpClient(same_host_only=True).probe(url)
        assert "another host" in assert_one_line(info.value)
        assert foreign.requests == []
        assert HttpClient().probe(url).ranges  # the default client (user-given URLs) follows as before
    assert foreign.requests
