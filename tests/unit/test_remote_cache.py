"""Remote access: the index cache (download once, detect corruption, atomic), HTTP errors, range-read loads."""

import math
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.load import LoadRequest, run
from geoembed.loaders.products.aef import classify_source
from geoembed.loaders.products.geoparquet import is_parquet
from geoembed.loaders.remote import http_client
from geoembed.loaders.remote.cache import cached_copy
from geoembed.loaders.remote.http_client import HttpClient
from tests.fixtures.aef import PATCH_DEG, TileSpec, build_mirror, patch_centre
from tests.support.range_server import RangeServer
from tests.unit.helpers import QuietLog, assert_one_line, expected_at, leftovers, partial_files, to_crs

INDEX = "/v1/annual/aef_index.parquet"


def _client():
    return HttpClient(retries=1, backoff=0.01)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch):
    """Clients made inside the loaders keep their number of retries but wait only milliseconds."""
    monkeypatch.setattr(http_client, "BACKOFF_S", 0.01)


def _gets(server, path):
    return [r for r in server.requests if r[0] == "GET" and r[1] == path]


@pytest.fixture(scope="module")
def server(aef_mirror):
    with RangeServer(aef_mirror) as running:
        yield running


@pytest.fixture
def fresh(server):
    server.reset()
    return server


def _data_files(cache):
    return [name for name in leftovers(cache) if not name.endswith(".json")]


def test_index_is_downloaded_once_and_reused(fresh, aef_mirror, tmp_path):
    url = fresh.url + INDEX
    first = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    second = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    third = cached_copy(url, is_parquet, cache_dir=tmp_path)  # default client: still no request
    assert first == second == third
    assert len(_gets(fresh, INDEX)) == 1
    assert fresh.bytes_by_path[INDEX] == (aef_mirror / INDEX.lstrip("/")).stat().st_size
    assert Path(first).read_bytes() == (aef_mirror / INDEX.lstrip("/")).read_bytes()
    assert str(first).startswith(str(tmp_path))
    assert partial_files(tmp_path) == []


def test_stale_entry_is_fetched_again(fresh, tmp_path):
    url = fresh.url + INDEX
    cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path, max_age=0)
    assert len(_gets(fresh, INDEX)) == 2
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncate", "empty", "overwrite-head", "delete-meta"])
def test_corrupted_cache_entry_is_detected_and_fetched_again(fresh, aef_mirror, tmp_path, damage):
    url = fresh.url + INDEX
    path = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    original = (aef_mirror / INDEX.lstrip("/")).read_bytes()
    if damage == "truncate":
        with open(path, "r+b") as handle:
            handle.truncate(len(original) // 2)
    elif damage == "empty":
        open(path, "wb").close()
    elif damage == "overwrite-head":  # same size, bad magic
        with open(path, "r+b") as handle:
            handle.write(b"JUNK")
    else:
        for name in leftovers(tmp_path):
            if name.endswith(".json"):
                os.remove(tmp_path / name)
    again = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert again == path
    assert Path(again).read_bytes() == original
    assert len(_gets(fresh, INDEX)) == 2
    assert partial_files(tmp_path) == []


def test_cached_copy_is_used_when_the_server_is_gone(aef_mirror, tmp_path):
    with RangeServer(aef_mirror) as gone:
        url = gone.url + INDEX
        path = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    log = QuietLog()
    start = time.monotonic()
    again = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path, max_age=0, log=log)
    assert time.monotonic() - start < 5  # refused in milliseconds; waiting for the 10 s connect timeout would fail
    assert again == path and is_parquet(again)
    assert len(log.warnings) == 1 and url in log.warnings[0]


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1/annual/aef_index.parquet", "closed-port"])
def test_unreachable_url_fails_fast_with_one_line(tmp_path, url):
    if url == "closed-port":
        url = f"http://127.0.0.1:{_closed_port()}/aef_index.parquet"
    start = time.monotonic()
    with pytest.raises(GeoEmbedError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert time.monotonic() - start < 5  # refused in milliseconds; waiting for the 10 s connect timeout would fail
    assert url in assert_one_line(info.value)
    assert _data_files(tmp_path) == [] and partial_files(tmp_path) == []
    with pytest.raises(GeoEmbedError):
        classify_source(url.rsplit("/", 1)[0], client=_client())


def test_404_raises(fresh, tmp_path):
    url = fresh.url + "/v1/annual/missing.parquet"
    with pytest.raises(GeoEmbedError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert "404" in assert_one_line(info.value)
    assert _data_files(tmp_path) == [] and partial_files(tmp_path) == []


def test_wrong_content_is_rejected_and_not_cached(fresh, tmp_path):
    url = fresh.url + "/v1/annual/aef_index.csv"  # a real file, but not Parquet
    with pytest.raises(GeoEmbedError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert_one_line(info.value)
    assert _data_files(tmp_path) == [] and partial_files(tmp_path) == []


def test_exists(fresh):
    client = _client()
    assert client.exists(fresh.url + INDEX)
    assert not client.exists(fresh.url + "/v1/annual/nothing.parquet")


def test_classify_http_sources(fresh):
    client = _client()
    assert classify_source(fresh.url, client) == ("index", fresh.url + INDEX)
    assert classify_source(fresh.url + "/", client) == ("index", fresh.url + INDEX)
    assert classify_source(fresh.url + "/v1/annual/", client) == ("index", fresh.url + INDEX)
    with pytest.raises(GeoEmbedError) as info:
        classify_source(fresh.url + "/elsewhere", client)
    assert "aef_index.parquet" in assert_one_line(info.value)


class _Misbehaving:
    """A server whose responses go wrong: 500 a few times, or a body shorter than its Content-Length."""

    def __init__(self, body):
        self.hits = []
        self.conditional = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                if self.path.startswith("/etag"):
                    outer.conditional.append(self.headers.get("If-None-Match"))
                    if self.headers.get("If-None-Match") == '"v1"':
                        self.send_response(304)
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("ETag", '"v1"')
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path.startswith("/flaky") and len(outer.hits) <= 2:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if self.path.startswith("/flaky") else body[: len(body) // 3])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_server_errors_are_retried(aef_mirror, tmp_path):
    body = (aef_mirror / INDEX.lstrip("/")).read_bytes()
    server = _Misbehaving(body)
    with server as url:
        client = HttpClient(retries=2, backoff=0.01)
        path = cached_copy(url + "/flaky/aef_index.parquet", is_parquet, client=client, cache_dir=tmp_path)
    assert Path(path).read_bytes() == body
    assert len(server.hits) == 3


def test_not_modified_keeps_the_cached_copy(aef_mirror, tmp_path):
    body = (aef_mirror / INDEX.lstrip("/")).read_bytes()
    server = _Misbehaving(body)
    with server as url:
        first = cached_copy(url + "/etag/aef_index.parquet", is_parquet, client=_client(), cache_dir=tmp_path)
        again = cached_copy(url + "/etag/aef_index.parquet", is_parquet, client=_client(), cache_dir=tmp_path, max_age=0)
        fresh_again = cached_copy(url + "/etag/aef_index.parquet", is_parquet, client=_client(), cache_dir=tmp_path)
    assert first == again == fresh_again
    assert Path(again).read_bytes() == body
    assert server.conditional == [None, '"v1"']  # revalidated once with the ETag, then fresh again
    assert partial_files(tmp_path) == []


def test_download_cut_short_is_a_one_line_error_and_leaves_nothing(aef_mirror, tmp_path):
    body = (aef_mirror / INDEX.lstrip("/")).read_bytes()
    with _Misbehaving(body) as url, pytest.raises(GeoEmbedError) as info:
        cached_copy(url + "/short/aef_index.parquet", is_parquet, client=_client(), cache_dir=tmp_path)
    assert_one_line(info.value)
    assert _data_files(tmp_path) == [] and partial_files(tmp_path) == []


# --- a load over HTTP reads tiles with ranges ---------------------------------------------------


@pytest.fixture(scope="module")
def big_mirror(tmp_path_factory):
    """One 512 x 512 tile (the session mirror's tiles are too small for GDAL's 16 KiB reads to skip much)."""
    root = tmp_path_factory.mktemp("big-mirror")
    x, y = to_crs(32631, 5.97, 45.0)
    spec = TileSpec(2024, "31N", math.floor((x - 2560) / 10) * 10, math.floor((y - 2560) / 10) * 10, 512, 512)
    build_mirror(root, [spec])
    return root, spec


def test_http_load_reads_a_small_part_of_the_tile(big_mirror, tmp_path):
    root, spec = big_mirror
    extent = (5.965, 44.995, 5.97, 45.0)
    tile_url = "/v1/annual/" + spec.relative_path
    tile_size = (root / tile_url.lstrip("/")).stat().st_size
    with RangeServer(root) as server:
        out = tmp_path / "out" / "remote.tif"
        request = LoadRequest(output=str(out), source=server.url, extent=extent, year=2024, cache_dir=str(tmp_path / "cache"))
        run(request, log=QuietLog())
        first = dict(server.bytes_by_path)
        tile_gets = [r for r in server.requests if r[0] == "GET" and r[1] == tile_url]
        server.reset()
        run(
            LoadRequest(
                output=str(tmp_path / "out" / "again.tif"),
                source=server.url + "/",
                extent=extent,
                year=2024,
                cache_dir=str(tmp_path / "cache"),
            ),
            log=QuietLog(),
        )
        second_index_gets = _gets(server, INDEX)
    assert first[INDEX] == (root / INDEX.lstrip("/")).stat().st_size
    assert second_index_gets == []  # the cached index is reused
    assert tile_gets and all((header or "").startswith("bytes=") for _, _, header in tile_gets)
    assert 0 < first[tile_url] < tile_size / 2, f"fetched {first[tile_url]} of {tile_size} bytes"
    assert partial_files(tmp_path) == []
    # and the values are right
    dataset = gdal.Open(str(out))
    c, a, _, f, _, e = dataset.GetGeoTransform()
    values = dataset.ReadAsArray()
    checked = 0
    for i in range(math.floor(extent[0] / PATCH_DEG) + 1, math.floor(extent[2] / PATCH_DEG)):
        for j in range(math.floor(extent[1] / PATCH_DEG) + 1, math.floor(extent[3] / PATCH_DEG)):
            lon, lat = (i + 0.5) * PATCH_DEG, (j + 0.5) * PATCH_DEG
            x, y = to_crs(32631, lon, lat)
            col, row = math.floor((x - c) / a), math.floor((y - f) / e)
            np.testing.assert_allclose(values[:, row, col], expected_at(lon, lat, 2024), atol=1e-6)
            checked += 1
    assert checked >= 2


def test_http_tile_url_is_read_with_ranges(big_mirror, tmp_path):
    root, spec = big_mirror
    extent = (5.965, 44.995, 5.97, 45.0)
    tile_url = "/v1/annual/" + spec.relative_path
    tile_size = (root / tile_url.lstrip("/")).stat().st_size
    out = tmp_path / "tile.tif"
    with RangeServer(root) as server:
        result = run(LoadRequest(output=str(out), source=server.url + tile_url, extent=extent), log=QuietLog())
        sent = dict(server.bytes_by_path)
    assert set(sent) == {tile_url}  # no index needed
    assert 0 < sent[tile_url] < tile_size / 2
    assert result.provenance.year == 2024 and result.provenance.sources == [server.url + tile_url]
    dataset = gdal.Open(str(out))
    c, a, _, f, _, e = dataset.GetGeoTransform()
    lon, lat = patch_centre(5.967, 44.997)
    x, y = to_crs(32631, lon, lat)
    col, row = math.floor((x - c) / a), math.floor((y - f) / e)
    np.testing.assert_allclose(dataset.ReadAsArray(col, row, 1, 1)[:, 0, 0], expected_at(lon, lat, 2024), atol=1e-6)


@pytest.mark.parametrize("product", ["aef", "auto"])
@pytest.mark.parametrize("name", ["tile.tiff", "x0123456789abcdef-0000000000-0000000000.tiff"])
def test_unreachable_tile_url_says_so(tmp_path, product, name):
    url = f"http://127.0.0.1:{_closed_port()}/v1/annual/2024/31N/{name}"
    out = tmp_path / "out"
    start = time.monotonic()
    with pytest.raises(GeoEmbedError) as info:
        request = LoadRequest(output=str(out / "e.tif"), product=product, source=url, extent=(5.98, 44.995, 6.01, 45.005))
        run(request, log=QuietLog())
    assert time.monotonic() - start < 30  # refused in under a second; waiting out retries or timeouts would fail
    message = assert_one_line(info.value)
    assert url in message
    assert any(word in message for word in ("Cannot reach", "connect", "Connect")), message
    assert leftovers(out) == []
