"""Refusals made before any work: extents the long way round the globe, outputs that cannot fit on the disk, headers
that claim more than any embedding file holds (loaders/limits.py), servers that never stop sending or stall."""

import os
import resource
import time
import zipfile
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path

import pytest
from osgeo import gdal

from geoembed.loaders import limits
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.limits import ImplausibleFile
from geoembed.loaders.load import LoadRequest, check_extent, plan, run
from geoembed.loaders.raster import gdal_io, writer
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.writer import OutputSpec, check_space
from geoembed.loaders.remote.http_client import HttpClient
from tests.support import hostile_files as hostile
from tests.support.hostile_server import HostileServer
from tests.unit.helpers import QuietLog, assert_one_line

Usage = namedtuple("Usage", "total used free")


def test_an_extent_across_the_antimeridian_is_refused_in_one_line():
    with pytest.raises(GeoEmbedError) as info:
        check_extent((-179.5, -17.0, 179.5, -16.0), "EPSG:4326")  # Fiji, 179.5E..179.5W, as QGIS orders it
    message = assert_one_line(info.value)
    assert "359.0 degrees" in message and "antimeridian" in message


def test_extents_up_to_half_the_globe_pass_in_any_crs():
    check_extent((-90.0, -10.0, 90.0, 10.0), "EPSG:4326")
    check_extent((700000.0, 4980000.0, 740000.0, 5000000.0), "EPSG:32631")


def test_load_refuses_the_extent_before_reading_anything(aef_mirror, tmp_path):
    world = (-179.9, 44.0, 179.9, 45.0)
    request = LoadRequest(output=str(tmp_path / "out.tif"), product="aef", source=str(aef_mirror), extent=world)
    with pytest.raises(GeoEmbedError, match="antimeridian"):
        plan(request)
    assert not os.listdir(tmp_path)


def test_an_output_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    grid = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 100_000, 100_000)  # 1e10 pixels x 64 bands of Float32
    spec = OutputSpec(str(tmp_path / "big.tif"), tuple(f"A{i:02d}" for i in range(64)))
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda folder: Usage(10**13, 0, 5 * 10**11))
    with pytest.raises(GeoEmbedError) as info:
        check_space(grid, [spec])
    message = assert_one_line(info.value)
    assert "1.3 TB" in message and "500.0 GB free" in message and "100000 x 100000" in message
    small = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 1000, 1000)
    check_space(small, [spec])  # 256 MB raw fits


def test_write_rasters_checks_space_before_creating_files(tmp_path, monkeypatch):
    grid = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 50, 40)
    spec = OutputSpec(str(tmp_path / "out.tif"), ("a", "b"))
    monkeypatch.setattr(writer.shutil, "disk_usage", lambda folder: Usage(100, 100, 10))
    with pytest.raises(GeoEmbedError, match="free"):
        writer.write_rasters(grid, [spec], lambda window: pytest.fail("nothing may be produced"))
    assert os.listdir(tmp_path) == []


# --- headers that lie, files made to exhaust a reader, servers that never stop (issue 13) ---------------------------
# Each is refused in one line before any large allocation: under a second of CPU and a bounded rise in resident memory.

MAX_CPU_S = 1.0
MAX_GROWTH_MIB = 300


def _rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextmanager
def refused_quickly(error=GeoEmbedError, *words):
    """The block raises `error` in one line holding `words`, within MAX_CPU_S of CPU, and the process's peak resident
    size (ru_maxrss, a high-water mark) rises by less than MAX_GROWTH_MIB above what it was."""
    before_peak = max(_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    started = time.process_time()
    with pytest.raises(error) as info:
        yield info
    cpu = time.process_time() - started
    message = assert_one_line(info.value)
    assert all(word.lower() in message.lower() for word in words), f"{words} not in: {message}"
    assert cpu < MAX_CPU_S, f"refused after {cpu:.2f} s of CPU: {message}"
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before_peak
    assert growth < MAX_GROWTH_MIB, f"peak memory grew by {growth:.0f} MiB"


def load_error(folder, **request):
    """Run a load into folder (raising what it raises); the caller checks the error."""
    os.makedirs(folder, exist_ok=True)
    run(LoadRequest(output=os.path.join(str(folder), "refused.tif"), **request), log=QuietLog())


@pytest.fixture()
def nothing_left(tmp_path):
    yield
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda p: hostile.huge_header_tiff(p / "huge.tif"), ["huge.tif", "1000000 x 1000000 pixels"]),
        (lambda p: hostile.huge_header_tiff(p / "wide.tif", width=2**21, height=1, bands=2), ["2097152 x 1 pixels"]),
        (lambda p: hostile.huge_header_tiff(p / "bands.tif", width=512, height=512), ["10000 bands", "4096"]),
        (lambda p: hostile.huge_header_vrt(p / "huge.vrt", side=1000, bands=5000), ["5000 bands"]),
        (lambda p: hostile.deflate_bomb_tiff(p / "bomb.tif"), ["bomb.tif", "32768 x 32768", "4.0 GiB"]),
    ],
    ids=["10^6 x 10^6 px x 10^4 bands", "2^21 px wide", "10^4 bands", "VRT of 5000 bands", "deflate bomb tile"],
)
def test_a_raster_header_that_claims_too_much_is_refused_before_reading(tmp_path, build, words):
    path = build(tmp_path)
    with refused_quickly(ImplausibleFile, *words):
        gdal_io.open_raster(path)


def test_the_deflate_bomb_is_refused_through_load_before_gdal_inflates_it(nothing_left, tmp_path):
    path = hostile.deflate_bomb_tiff(tmp_path / "bomb.tif")
    with refused_quickly(GeoEmbedError, "bomb.tif", "block"):
        load_error(tmp_path / "out", source=path, extent=(500000.0, 4999990.0, 500010.0, 5000000.0), extent_crs="EPSG:32631")


def test_a_read_larger_than_memory_allows_is_refused_before_gdal_allocates(tmp_path):
    path = hostile.huge_header_vrt(tmp_path / "big.vrt", side=100000, bands=64)
    dataset = gdal_io.open_raster(path)  # plausible header: 10^10 pixels of 64 bands
    with refused_quickly(GeoEmbedError, "big.vrt", "100000 x 100000 pixels x 64 bands", "EXTENT"):
        gdal_io.read_window(dataset, path, 0, 0, 100000, 100000)
    assert gdal_io.read_window(dataset, path, 0, 0, 8, 8).shape == (64, 8, 8)  # a window the request needs


def test_read_limit_follows_available_memory(monkeypatch):
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: 2 * limits.GIB)
    assert limits.read_limit_bytes() == limits.GIB
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: 10 * limits.MIB)
    assert limits.read_limit_bytes() == limits.READ_FLOOR_BYTES
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: None)
    assert limits.read_limit_bytes() == limits.READ_CAP_BYTES
    monkeypatch.undo()
    assert 0 < limits.available_memory_bytes() < 1 << 50


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda p: hostile.npy_header_only(p, (10**6, 10**6, 128)), ["(1000000, 1000000, 128)"]),
        (lambda p: hostile.npy_header_only(p, (1000, 1000, 10**5)), ["4096"]),
        (lambda p: hostile.npy_header_only(p, (1000, 1000, 128), data=b"\x01" * 4096), ["truncated or lying"]),
        (lambda p: hostile.npy_header_only(p, (4, 4, 128), fortran=True, data=bytes(2048)), ["Fortran"]),
        (lambda p: hostile.npy_header_only(p, (4, 4, 128), descr="<f8", data=bytes(16384)), ["float64", "int8"]),
    ],
    ids=["giant shape", "10^5 dims", "more bytes than the file", "fortran order", "wrong dtype"],
)
def test_a_tessera_npy_header_that_lies_is_refused_before_mapping(nothing_left, tmp_path, build, words):
    tile = hostile.tessera_tile(tmp_path / "tiles", build)
    with refused_quickly(GeoEmbedError, "grid_0.15_45.05.npy", *words):
        load_error(tmp_path / "out", product="tessera", source=tile)


def test_an_object_npy_is_refused_and_never_unpickled(nothing_left, tmp_path):
    marker = tmp_path / "unpickled"
    tile = hostile.tessera_tile(tmp_path / "tiles", lambda p: hostile.object_npy(p, marker))
    with refused_quickly(GeoEmbedError, "Python objects", "never unpickles"):
        load_error(tmp_path / "out", product="tessera", source=tile)
    with refused_quickly(GeoEmbedError, "Python objects"):
        load_error(tmp_path / "out", source=tile)  # PRODUCT=auto
    assert not marker.exists()


def _npz(path, member_bytes):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("arr_0.npy", member_bytes)
    return str(path)


def _npy_bytes(tmp_path, **header):
    return Path(hostile.npy_header_only(tmp_path / "member.npy", **header)).read_bytes()


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ({"shape": (721, 1440, 768), "descr": "<f4", "data": bytes(4096)}, ["truncated or lying"]),
        ({"shape": (721, 1440, 10**5), "descr": "<f4"}, ["4096 dimensions"]),
        ({"shape": (721, 1440, 8), "descr": "|O"}, ["Python objects"]),
    ],
    ids=["header claims 3 GB, member holds 4 KB", "10^5 dims", "object dtype"],
)
def test_a_copernicus_npz_member_that_lies_is_refused_before_streaming(nothing_left, tmp_path, header, words):
    path = _npz(tmp_path / "embed_map_310k.npz", _npy_bytes(tmp_path, **header))
    with refused_quickly(GeoEmbedError, "embed_map_310k.npz", *words):
        load_error(tmp_path / "out", product="copernicus-embed", source=path)


def test_a_zip_member_claiming_more_than_deflate_can_expand_is_refused():
    with pytest.raises(ImplausibleFile, match="deflate never expands"):
        limits.check_compression("m.npz", "arr_0.npy", 1000, 10**9)
    limits.check_compression("m.npz", "arr_0.npy", 10**6, 10**8)  # 100-fold: zeros (ocean) do that


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda p: hostile.wide_list_parquet(p), ["100000000 values per row", "embeddings"]),
        (lambda p: hostile.fixed_width_parquet(p), ["100000 values per row"]),
        (lambda p: hostile.lying_rows_parquet(p), ["3 rows", "hold 50", "metadata lies"]),
    ],
    ids=["list of 10^8 values per row", "fixed_size_list of 10^5", "row group claims 50 of 3 rows"],
)
def test_a_geoparquet_whose_metadata_claims_too_much_is_refused_before_reading_rows(nothing_left, tmp_path, build, words):
    path = build(tmp_path / "chips.parquet")
    with refused_quickly(GeoEmbedError, "chips.parquet", *words):
        load_error(tmp_path / "out", product="clay", source=path)


def test_a_server_that_never_stops_sending_is_cut_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_MAX_DOWNLOAD_MIB", "4")
    with HostileServer() as server:
        with pytest.raises(GeoEmbedError) as info:
            HttpClient(retries=0).download(server.url + "/endless/index.parquet", tmp_path / "index.parquet")
        message = assert_one_line(info.value)
        assert "larger than the 4 MiB" in message and "GEOEMBED_MAX_DOWNLOAD_MIB" in message
        server.closing.set()
        assert server.sent("/endless/index.parquet") < 64 * 2**20  # the client hung up soon after the cap
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_a_server_that_sends_more_than_it_declared_is_cut_at_the_declared_size(tmp_path):
    with HostileServer() as server:
        HttpClient(retries=0).download(server.url + "/overflow/index.parquet", tmp_path / "index.parquet")
        assert (tmp_path / "index.parquet").stat().st_size == 100


def test_a_server_that_stalls_times_out_after_geoembed_http_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_HTTP_TIMEOUT_S", "0.5")
    with HostileServer() as server:
        started = time.monotonic()
        with pytest.raises(GeoEmbedError) as info:
            HttpClient(retries=0).download(server.url + "/stall/index.parquet", tmp_path / "index.parquet")
        assert "stalled: no byte for 0.5 s" in assert_one_line(info.value)
        with pytest.raises(GeoEmbedError) as info:
            HttpClient(retries=0).probe(server.url + "/silent/tile.tif")
        assert "no answer within 0.5 s" in assert_one_line(info.value)
        assert time.monotonic() - started < 20  # generous: two 0.5 s timeouts
    assert list(tmp_path.iterdir()) == []


def test_gdal_gives_up_a_stalled_range_read_after_the_same_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_HTTP_TIMEOUT_S", "1")
    monkeypatch.setitem(gdal_io.REMOTE_OPTIONS, "GDAL_HTTP_MAX_RETRY", "0")
    monkeypatch.setattr(gdal_io, "RETRY_BACKOFF_S", 0.01)
    path = tmp_path / "small.tif"
    gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 3, gdal.GDT_Float32).FlushCache()
    with HostileServer(files={"small.tif": path.read_bytes()}) as server:
        started = time.monotonic()
        with pytest.raises(GeoEmbedError) as info:
            gdal_io.open_raster(server.url + "/stall-ranges/small.tif")
        assert_one_line(info.value)
        assert time.monotonic() - started < 30  # 3 opens x 1 s of silence, not GDAL's default minutes


def test_timeouts_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GEOEMBED_HTTP_TIMEOUT_S", "2.5")
    assert HttpClient().timeout == (2.5, 2.5)
    options = gdal_io._timeout_options()
    assert options["GDAL_HTTP_LOW_SPEED_TIME"] == "3" and options["GDAL_HTTP_TIMEOUT"] == "5"
    monkeypatch.setenv("GEOEMBED_HTTP_TIMEOUT_S", "soon")
    with pytest.raises(GeoEmbedError, match="GEOEMBED_HTTP_TIMEOUT_S"):
        HttpClient()
    monkeypatch.delenv("GEOEMBED_HTTP_TIMEOUT_S")
    assert HttpClient().timeout == (10, 30.0) and gdal_io._timeout_options() == {}
