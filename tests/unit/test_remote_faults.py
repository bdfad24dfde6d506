"""Remote faults against a scripted server: the right retries, the right one-line error, bounded bytes, a clean cache.

The server (tests/support/fault_server.py) answers 5xx, 404, drops connections mid-body, lies about
Content-Length, corrupts bodies, ignores Range and answers slowly; it counts requests and body bytes.
Backoffs are shrunk to milliseconds; the number of tries is the real one.
"""

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import nullcontext, suppress
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import GeoEmbedError, RemoteError
from geoembed.loaders.load import LoadRequest, run
from geoembed.loaders.open import open_embeddings
from geoembed.loaders.products.geoparquet import is_parquet
from geoembed.loaders.raster import gdal_io
from geoembed.loaders.raster.gdal_io import open_raster, read_window, remote_options
from geoembed.loaders.remote import cache, filelock, http_client, range_check
from geoembed.loaders.remote.cache import CacheEntry, cached_copy
from geoembed.loaders.remote.filelock import FileLock
from geoembed.loaders.remote.http_client import HttpClient
from geoembed.loaders.remote.range_check import RANGE_REQUIRED_ABOVE, raster_location
from tests.fixtures.aef import patch_centre
from tests.support.fault_server import Corrupt, Drop, FaultServer, IgnoreRange, Ok, Slow, Status, Trickle, WrongLength
from tests.unit.helpers import QuietLog, assert_one_line, expected_at, find_spec, leftovers, to_crs

REPO = Path(__file__).resolve().parents[2]
INDEX = "/v1/annual/aef_index.parquet"
MIB = 1 << 20
SLOW_S = 60.0  # an answer this slow is never waited for: the read timeouts below are tenths of a second


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    """Real numbers of tries, millisecond waits (GDAL's own retry delay too)."""
    monkeypatch.setattr(http_client, "BACKOFF_S", 0.01)
    monkeypatch.setattr(gdal_io, "RETRY_BACKOFF_S", 0.01)
    monkeypatch.setitem(gdal_io.REMOTE_OPTIONS, "GDAL_HTTP_RETRY_DELAY", "0.01")


@pytest.fixture
def index_bytes(aef_mirror):
    return (aef_mirror / INDEX.lstrip("/")).read_bytes()


@pytest.fixture
def server(aef_mirror):
    with FaultServer(aef_mirror) as running:
        yield running


def _client(**kwargs):
    return HttpClient(**{"retries": 3, "backoff": 0.001, **kwargs})


def _cache_files(folder):
    """Everything left in the cache folder, temp and lock files included."""
    return leftovers(folder) if os.path.isdir(folder) else []


def _entry_ok(folder, url, content):
    """The cache holds exactly the entry's data and record, the data is `content`, the record matches it."""
    entry = CacheEntry(url, folder)
    assert sorted(_cache_files(folder)) == sorted([f"files/{entry.data.name}", f"files/{entry.meta_path.name}"]), _cache_files(
        folder
    )
    assert entry.data.read_bytes() == content
    meta = json.loads(entry.meta_path.read_text())
    assert meta["size"] == len(content) and meta["sha256"] == hashlib.sha256(content).hexdigest()


# --- retries of downloads ------------------------------------------------------------------------


def test_server_errors_then_success_are_retried_with_exponential_backoff(server, index_bytes, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(http_client.time, "sleep", waits.append)
    server.add(INDEX, script=[Status(500), Status(503), Ok()])
    url = server.url + INDEX
    path = cached_copy(url, is_parquet, client=_client(backoff=0.25, max_backoff=0.6), cache_dir=tmp_path)
    assert Path(path).read_bytes() == index_bytes
    assert server.count(INDEX) == 3
    assert waits == [0.25, 0.5]
    _entry_ok(tmp_path, url, index_bytes)


def test_backoff_doubles_up_to_its_cap(server, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(http_client.time, "sleep", waits.append)
    server.add(INDEX, script=[Status(502)])
    with pytest.raises(RemoteError):
        cached_copy(server.url + INDEX, is_parquet, client=_client(retries=5, backoff=0.1, max_backoff=0.5), cache_dir=tmp_path)
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert server.count(INDEX) == 6


@pytest.mark.parametrize("code", [500, 503, 429])
def test_persistent_server_errors_give_one_line_after_a_bounded_number_of_tries(server, tmp_path, code):
    server.add(INDEX, script=[Status(code)])
    url = server.url + INDEX
    with pytest.raises(RemoteError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    message = assert_one_line(info.value)
    assert url in message and f"HTTP {code}" in message and "4 tries" in message and "try again" in message
    assert server.count(INDEX) == 4
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize("code", [404, 410])
def test_not_found_is_not_retried(server, tmp_path, code):
    path = "/v1/annual/gone.parquet"
    server.add(path, b"x", script=[Status(code)])
    url = server.url + path
    with pytest.raises(RemoteError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    message = assert_one_line(info.value)
    assert message == f"Not found (HTTP {code}): {url}; check SOURCE (the address, year and file name)."
    assert server.count(path) == 1
    assert _cache_files(tmp_path) == []


def test_forbidden_is_not_retried(server, tmp_path):
    server.add(INDEX, script=[Status(403)])
    with pytest.raises(RemoteError) as info:
        cached_copy(server.url + INDEX, is_parquet, client=_client(), cache_dir=tmp_path)
    assert "Access denied (HTTP 403)" in assert_one_line(info.value)
    assert server.count(INDEX) == 1


@pytest.mark.parametrize(
    "fault, what",
    [(Drop(after=5000), "connection dropped mid-body"), (WrongLength(extra=777), "Content-Length longer than the body")],
)
def test_cut_short_bodies_are_retried(server, index_bytes, tmp_path, fault, what):
    server.add(INDEX, script=[fault, Ok()])
    url = server.url + INDEX
    path = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert Path(path).read_bytes() == index_bytes, what
    assert server.count(INDEX) == 2
    first = 5000 if isinstance(fault, Drop) else len(index_bytes)
    assert server.sent(INDEX) == first + len(index_bytes)
    _entry_ok(tmp_path, url, index_bytes)


@pytest.mark.parametrize("fault", [Drop(after=5000), WrongLength(extra=777)])
def test_always_cut_short_gives_one_line_and_leaves_nothing(server, index_bytes, tmp_path, fault):
    server.add(INDEX, script=[fault])
    url = server.url + INDEX
    with pytest.raises(RemoteError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    message = assert_one_line(info.value)
    assert message.startswith(f"Download of {url} was cut short (") and "on all 4 tries" in message
    if isinstance(fault, WrongLength):
        # urllib3 1.x hands over the bytes before the cut; 2.x raises in the read that holds them (0 bytes here)
        counts = re.search(r"\b(\d+) of (\d+) bytes\b", message)
        assert counts, message
        assert int(counts.group(1)) <= len(index_bytes) and int(counts.group(2)) == len(index_bytes) + 777, message
    assert server.count(INDEX) == 4
    assert _cache_files(tmp_path) == []


def test_a_body_that_fails_its_checksum_header_is_fetched_again(server, index_bytes, tmp_path):
    server.add(INDEX, script=[Corrupt(), Ok()], md5=True)
    url = server.url + INDEX
    path = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert Path(path).read_bytes() == index_bytes
    assert server.count(INDEX) == 2
    _entry_ok(tmp_path, url, index_bytes)


def test_a_body_that_always_fails_its_checksum_is_refused(server, tmp_path):
    server.add(INDEX, script=[Corrupt()], md5=True)
    with pytest.raises(RemoteError) as info:
        cached_copy(server.url + INDEX, is_parquet, client=_client(retries=1), cache_dir=tmp_path)
    assert "MD5" in assert_one_line(info.value)
    assert server.count(INDEX) == 2
    assert _cache_files(tmp_path) == []


def test_slow_answers_time_out_and_are_retried(server, index_bytes, tmp_path):
    server.add(INDEX, script=[Slow(SLOW_S), Ok()])
    url = server.url + INDEX
    start = time.monotonic()
    path = cached_copy(url, is_parquet, client=_client(timeout=(2, 0.3)), cache_dir=tmp_path)
    assert time.monotonic() - start < SLOW_S / 2  # did not wait for the slow answer
    assert Path(path).read_bytes() == index_bytes
    assert server.count(INDEX) == 2


def test_always_slow_gives_one_line_within_the_timeouts(server, tmp_path):
    server.add(INDEX, script=[Slow(SLOW_S)])
    url = server.url + INDEX
    start = time.monotonic()
    with pytest.raises(RemoteError) as info:
        cached_copy(url, is_parquet, client=_client(retries=1, timeout=(2, 0.2)), cache_dir=tmp_path)
    assert time.monotonic() - start < SLOW_S / 2  # two tries of 0.2 s, not one slow answer
    message = assert_one_line(info.value)
    assert message == f"Cannot reach {url} (no answer within 0.2 s, 2 tries); check the address and your network."
    assert server.count(INDEX) == 2
    assert _cache_files(tmp_path) == []


def test_a_stalled_body_is_retried(server, index_bytes, tmp_path):
    server.add(INDEX, script=[Trickle(chunk=4096, delay=0.5), Ok()])
    path = cached_copy(server.url + INDEX, is_parquet, client=_client(timeout=(2, 0.2)), cache_dir=tmp_path)
    assert Path(path).read_bytes() == index_bytes
    assert server.count(INDEX) == 2


def test_wrong_kind_of_content_is_not_retried_and_not_cached(server, tmp_path):
    server.add("/v1/annual/fake.parquet", b"PAR1 but not really parquet at all", script=[Ok()])
    url = server.url + "/v1/annual/fake.parquet"
    with pytest.raises(GeoEmbedError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert assert_one_line(info.value) == f"{url} is not a valid file of the expected kind; check SOURCE."
    assert server.count("/v1/annual/fake.parquet") == 1
    assert _cache_files(tmp_path) == []


def test_whole_file_downloads_are_refused_over_the_limit_before_the_body(server, tmp_path):
    server.add("/huge.parquet", b"PAR1", size=300 * MIB, script=[Ok()])
    url = server.url + "/huge.parquet"
    with pytest.raises(RemoteError) as info:
        cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path, max_size=10 * MIB)
    assert "300 MiB" in assert_one_line(info.value)
    assert server.count("/huge.parquet") == 1
    assert server.sent("/huge.parquet") < 8 * MIB
    assert _cache_files(tmp_path) == []


def test_exists_asks_for_a_byte_when_head_is_not_allowed(server):
    server.add(INDEX, script=[Status(405)], methods=("HEAD",))
    assert _client().exists(server.url + INDEX)
    assert server.count(INDEX, "HEAD") == 1 and server.count(INDEX, "GET") == 1
    assert server.sent(INDEX) == 1


# --- the cache on use --------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage-same-size", "appended", "record-garbage", "record-without-checksum"])
def test_a_corrupt_entry_is_detected_logged_and_fetched_again(server, index_bytes, tmp_path, damage):
    url = server.url + INDEX
    path = Path(cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path))
    entry = CacheEntry(url, tmp_path)
    if damage == "truncated":
        path.write_bytes(index_bytes[: len(index_bytes) // 2])
    elif damage == "garbage-same-size":  # the Parquet frame is intact: only the checksum can tell
        middle = len(index_bytes) // 2
        path.write_bytes(index_bytes[:middle] + b"\0" * 64 + index_bytes[middle + 64 :])
        assert is_parquet(path)
    elif damage == "appended":
        path.write_bytes(index_bytes + b"junk")
    elif damage == "record-garbage":
        entry.meta_path.write_text("{not json")
    else:
        meta = json.loads(entry.meta_path.read_text())
        del meta["sha256"]
        entry.meta_path.write_text(json.dumps(meta))
    log = QuietLog()
    again = cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path, log=log)
    assert Path(again) == path and path.read_bytes() == index_bytes
    assert server.count(INDEX) == 2
    assert len(log.warnings) == 1 and url in log.warnings[0] and "corrupt" in log.warnings[0], log.warnings
    _entry_ok(tmp_path, url, index_bytes)


def test_a_corrupt_entry_is_not_kept_when_the_server_is_gone(aef_mirror, index_bytes, tmp_path):
    with FaultServer(aef_mirror) as gone:
        url = gone.url + INDEX
        path = Path(cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path))
    path.write_bytes(b"PAR1" + b"\0" * 100)
    with pytest.raises(RemoteError) as info:
        cached_copy(url, is_parquet, client=_client(retries=1), cache_dir=tmp_path, log=QuietLog())
    assert "Cannot reach" in assert_one_line(info.value)
    assert _cache_files(tmp_path) == []


def test_temp_files_of_a_killed_run_are_removed(server, index_bytes, tmp_path):
    url = server.url + INDEX
    entry = CacheEntry(url, tmp_path)
    entry.data.parent.mkdir(parents=True)
    orphan = entry.data.parent / f".{entry.data.name}.abc123.partial"
    orphan.write_bytes(index_bytes[:100])
    other = entry.data.parent / ".someone-else.parquet.xyz.partial"
    other.write_bytes(b"not ours")
    cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)
    assert not orphan.exists() and other.exists()


# --- Range support -------------------------------------------------------------------------------


def test_a_server_with_ranges_is_read_in_place_after_a_one_byte_probe(server):
    server.add("/big.tif", b"II*\0", size=300 * MIB)
    assert raster_location(server.url + "/big.tif", _client()) == "/vsicurl/" + server.url + "/big.tif"
    assert [(r.method, r.range) for r in server.requests] == [("GET", "bytes=0-0")]
    assert server.sent() == 1


def test_a_big_file_on_a_server_that_ignores_range_is_refused_without_downloading_it(server, tmp_path):
    server.add("/v1/annual/2024/31N/big.tiff", b"II*\0", size=300 * MIB, script=[IgnoreRange()])
    url = server.url + "/v1/annual/2024/31N/big.tiff"
    with pytest.raises(RemoteError) as info:
        raster_location(url, _client(), cache_dir=tmp_path)
    message = assert_one_line(info.value)
    assert url in message and "ignores HTTP Range requests" in message and "300 MiB" in message
    assert f"{RANGE_REQUIRED_ABOVE // MIB} MiB" in message and "local path" in message
    assert server.count("/v1/annual/2024/31N/big.tiff") == 1
    assert server.sent() < 8 * MIB, f"sent {server.sent()} bytes"
    assert _cache_files(tmp_path) == []


def test_loading_a_big_tile_from_a_server_that_ignores_range_fails_cleanly(server, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_CACHE_DIR", str(tmp_path / "cache"))
    server.add("/v1/annual/2024/31N/tile.tiff", b"II*\0", size=300 * MIB, script=[IgnoreRange()])
    out = tmp_path / "out"
    with pytest.raises(RemoteError) as info:
        run(LoadRequest(output=str(out / "e.tif"), product="aef", source=server.url + "/v1/annual/2024/31N/tile.tiff"))
    assert "ignores HTTP Range requests" in assert_one_line(info.value)
    assert server.sent() < 8 * MIB
    assert _cache_files(out) == [] and _cache_files(tmp_path / "cache") == []


def test_a_small_tile_on_a_server_that_ignores_range_is_fetched_once(server, aef_mirror, aef_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_CACHE_DIR", str(tmp_path / "cache"))
    spec = find_spec(aef_specs, 2024, "32N")
    path = "/v1/annual/" + spec.relative_path
    tile = (aef_mirror / path.lstrip("/")).read_bytes()
    assert len(tile) < RANGE_REQUIRED_ABOVE
    server.add(path, script=[IgnoreRange()])
    out = tmp_path / "out" / "tile.tif"
    lon, lat = patch_centre(6.008, 45.0013)
    log = QuietLog()
    for _ in range(2):  # the second load reuses the cached copy
        run(LoadRequest(output=str(out), product="aef", source=server.url + path, extent=(6.006, 45.0, 6.0098, 45.0027)), log=log)
        _check_pixel(out, lon, lat, 32632)
        out.unlink()
    gets = [r.range for r in server.requests if r.method == "GET"]
    assert gets == ["bytes=0-0", None, "bytes=0-0"], gets  # probe, whole download; probe again, then the cache
    _entry_ok(tmp_path / "cache", server.url + path, tile)


def _check_pixel(path, lon, lat, epsg):
    dataset = gdal.Open(str(path))
    c, a, _, f, _, e = dataset.GetGeoTransform()
    x, y = to_crs(epsg, lon, lat)
    col, row = math.floor((x - c) / a), math.floor((y - f) / e)
    np.testing.assert_allclose(dataset.ReadAsArray(col, row, 1, 1)[:, 0, 0], expected_at(lon, lat, 2024), atol=1e-6)


# --- GDAL's range reads --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiled_tiff(tmp_path_factory):
    """A 512 x 512 x 3 tiled GeoTIFF (64 x 64 blocks) and its pixels."""
    path = tmp_path_factory.mktemp("tiled") / "tiled.tif"
    values = np.random.default_rng(7).integers(0, 60000, (3, 512, 512), dtype=np.uint16)
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), 512, 512, 3, gdal.GDT_UInt16, ["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"]
    )
    dataset.SetGeoTransform((500000, 10, 0, 5000000, 0, -10))
    dataset.WriteArray(values)
    dataset = None
    return path.read_bytes(), values


def _serve_tiff(server, tiled_tiff, name):
    data, values = tiled_tiff
    path = f"/{name}.tif"
    server.add(path, data)
    return path, server.url + path, values


def test_gdal_reads_of_a_flaky_server_are_retried(server, tiled_tiff):
    path, url, values = _serve_tiff(server, tiled_tiff, "flaky")
    # the probe, then GDAL's first (header) read: both answered 503 once
    server.add(path, script=[Status(503), Ok(), Status(503), Ok()], methods=("GET",))
    dataset = open_raster(url, _client())
    server.add(path, script=[Status(500, times=2), Ok()], methods=("GET",))
    array = read_window(dataset, url, 64, 64, 128, 128)
    np.testing.assert_array_equal(array, values[:, 64:192, 64:192])
    assert [r.behaviour for r in server.requests if r.method == "GET"].count("Status") == 4


def test_a_connection_dropped_while_gdal_opens_is_retried(server, tiled_tiff):
    path, url, values = _serve_tiff(server, tiled_tiff, "dropped-open")
    server.add(path, script=[Ok(), Drop(after=100), Ok()], methods=("GET",))  # probe, GDAL's header read, ...
    dataset = open_raster(url, _client())
    np.testing.assert_array_equal(read_window(dataset, url, 0, 0, 64, 64), values[:, :64, :64])


def test_a_connection_dropped_during_a_block_read_is_retried(server, tiled_tiff):
    path, url, values = _serve_tiff(server, tiled_tiff, "dropped-read")
    dataset = open_raster(url, _client())
    server.add(path, script=[Drop(after=10), Ok()], methods=("GET",))
    np.testing.assert_array_equal(read_window(dataset, url, 256, 256, 64, 64), values[:, 256:320, 256:320])
    assert "Drop" in [r.behaviour for r in server.requests]


def test_gdal_reads_that_keep_failing_give_one_line(server, tiled_tiff):
    path, url, _ = _serve_tiff(server, tiled_tiff, "broken")
    dataset = open_raster(url, _client())
    server.add(path, script=[Status(500)], methods=("GET",))
    before = server.count(path)
    with pytest.raises(RemoteError) as info:
        read_window(dataset, url, 128, 128, 64, 64)
    message = assert_one_line(info.value)
    assert message == f"Cannot read {url}: HTTP 500 ({gdal_io.READ_RETRIES + 1} tries); check your network and try again."
    tries = server.count(path) - before
    # GDAL's own requests for one failing read of that window (2 ranges on GDAL 3.6, 3 on 3.13, each tried
    # GDAL_HTTP_MAX_RETRY + 1 times): GeoEmbed may repeat that READ_RETRIES times, no more.
    max_retry = int(gdal_io.REMOTE_OPTIONS["GDAL_HTTP_MAX_RETRY"])
    one_read = _requests_of_one_failing_gdal_read(server, tiled_tiff, 128, 128, 64, 64)
    assert one_read % (max_retry + 1) == 0, one_read
    assert tries % (max_retry + 1) == 0, tries
    assert (gdal_io.READ_RETRIES + 1) * (max_retry + 1) <= tries <= (gdal_io.READ_RETRIES + 1) * one_read, (tries, one_read)


def _requests_of_one_failing_gdal_read(server, tiled_tiff, col, row, width, height):
    """How many requests GDAL itself makes for one read that fails with HTTP 500 (one open, one read, no retries
    of GeoEmbed's), on a copy of the file at another path (GDAL caches per URL)."""
    path, url, _ = _serve_tiff(server, tiled_tiff, "broken-control")
    dataset = open_raster(url, _client())
    server.add(path, script=[Status(500)], methods=("GET",))
    before = server.count(path)
    with remote_options(), gdal_io.gdal_errors(), suppress(RuntimeError):  # RuntimeError: GDAL with exceptions on
        assert dataset.ReadAsArray(col, row, width, height) is None
    return server.count(path) - before


def test_a_raster_url_that_is_not_found_says_so_at_once(server):
    url = server.url + "/nothing.tif"
    with pytest.raises(RemoteError) as info:
        open_raster(url, _client())
    assert assert_one_line(info.value).startswith(f"Not found (HTTP 404): {url};")
    assert server.count("/nothing.tif") == 1


def test_an_analysis_input_url_that_is_not_found_is_asked_for_once(server):
    url = server.url + "/v1/annual/2024/31N/embeddings.tif"
    with pytest.raises(RemoteError) as info:
        open_embeddings(url, QuietLog())
    assert assert_one_line(info.value).startswith(f"Not found (HTTP 404): {url};")
    assert server.count("/v1/annual/2024/31N/embeddings.tif") == 1


def test_gdal_http_settings_from_the_environment_win(monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "9")
    with remote_options():
        assert gdal.GetConfigOption("GDAL_HTTP_MAX_RETRY") == "9"
        assert gdal.GetConfigOption("GDAL_HTTP_TIMEOUT") == gdal_io.REMOTE_OPTIONS["GDAL_HTTP_TIMEOUT"]
    assert gdal.GetThreadLocalConfigOption("GDAL_HTTP_TIMEOUT", None) is None


# --- concurrency -------------------------------------------------------------------------------


def _slow_index(server, seconds=1.2):
    """The index sent in 20 pieces over about `seconds`, so concurrent fetches overlap."""
    size = len(server._body(INDEX).data)
    server.add(INDEX, script=[Trickle(chunk=math.ceil(size / 20), delay=seconds / 20)])


def test_two_processes_fetching_one_entry_download_it_once(server, index_bytes, tmp_path):
    _slow_index(server, seconds=4)  # a worker starting up to 3.5 s late on a busy machine still overlaps the other
    url, cache_dir = server.url + INDEX, tmp_path / "cache"
    workers = []
    for number in range(2):
        ready, go = tmp_path / f"ready{number}", tmp_path / "go"
        command = [sys.executable, "-m", "tests.support.cache_worker", url, str(cache_dir), str(ready), str(go)]
        workers.append((ready, subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for ready, _ in workers):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = []
    for _, process in workers:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        results.append(json.loads(stdout))
    assert server.count(INDEX) == 1
    assert results[0]["path"] == results[1]["path"]
    assert all(result["sha256"] == hashlib.sha256(index_bytes).hexdigest() for result in results)
    assert min(result["seconds"] for result in results) > 0.5  # both ran while the ~4 s download was under way
    assert all(result["log"] == [] for result in results)  # nobody saw a corrupt entry
    _entry_ok(cache_dir, url, index_bytes)


def test_two_threads_fetching_one_entry_download_it_once(server, index_bytes, tmp_path):
    _slow_index(server)
    url = server.url + INDEX
    results, errors = [], []

    def fetch():
        try:
            results.append(Path(cached_copy(url, is_parquet, client=_client(), cache_dir=tmp_path)).read_bytes())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and results == [index_bytes] * 3
    assert server.count(INDEX) == 1
    _entry_ok(tmp_path, url, index_bytes)


def test_without_the_lock_concurrent_downloads_still_leave_one_consistent_entry(server, index_bytes, tmp_path, monkeypatch):
    """Unique temp names and atomic renames alone keep the entry whole (the lock only saves the second download)."""
    monkeypatch.setattr(cache, "FileLock", lambda path: nullcontext())
    monkeypatch.setattr(CacheEntry, "remove_orphans", lambda self: None)  # only safe under the lock
    _slow_index(server)
    url = server.url + INDEX
    threads = [threading.Thread(target=cached_copy, args=(url, is_parquet, _client(), tmp_path)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert server.count(INDEX) == 2
    _entry_ok(tmp_path, url, index_bytes)


@pytest.mark.parametrize("use_flock", [True, False])
def test_file_lock_excludes_and_cleans_up(tmp_path, use_flock):
    path = tmp_path / "entry.lock"
    inside, order = threading.Event(), []

    def holder():
        with FileLock(path, use_flock=use_flock):
            inside.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(60)
    with FileLock(path, use_flock=use_flock):
        order.append("second in")
    thread.join()
    assert order == ["first out", "second in"]  # the order, not a wait time, shows the second one waited
    assert not path.exists()


def test_file_lock_fallback_breaks_a_stale_lock_and_times_out_on_a_live_one(tmp_path, monkeypatch):
    monkeypatch.setattr(filelock, "POLL_S", 0.01)
    path = tmp_path / "entry.lock"
    path.write_text("12345")
    old = time.time() - 1000
    os.utime(path, (old, old))
    with FileLock(path, use_flock=False, stale=60, timeout=30):  # breaking it takes milliseconds; 30 s: a busy machine
        pass
    path.write_text("12345")  # fresh: held by a live run
    with pytest.raises(GeoEmbedError) as info, FileLock(path, use_flock=False, stale=60, timeout=0.2):
        pass
    assert str(path) in assert_one_line(info.value)


def test_range_check_module_constant_is_64_mib():
    assert range_check.RANGE_REQUIRED_ABOVE == 64 * MIB
