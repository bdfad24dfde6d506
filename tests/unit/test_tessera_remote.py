"""Tessera over http(s) with its versions: a two-version, two-year mirror served by the fault-injecting test server.

Plain http on 127.0.0.1 (the test servers do not do TLS; the code path is the same for https). Expectations: the same
mirror loaded from its local folder, and tests.fixtures.tessera's own values.
"""

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis.change import check_same_bands
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.products import tessera_coverage
from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff
from geoembed.loaders.remote import http_client
from tests.fixtures import tessera as fx
from tests.fixtures.fields import patch_centre
from tests.support.fault_server import FaultServer, Status, WrongLength
from tests.unit.conftest import load, load_error
from tests.unit.helpers import assert_one_line

EXTENT = (5.986, 44.997, 5.993, 45.004)  # inside grid_5.99_45.00, with part of its water box
BOTH_TILES = (5.986, 44.997, 6.003, 45.003)
POINT = patch_centre(5.991, 44.999)


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setattr(http_client, "BACKOFF_S", 0.01)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("tessera-mirror")
    return root, fx.build_versions_mirror(root)


@pytest.fixture(scope="module")
def v1_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("tessera-v1")
    fx.build_versions_mirror(root, versions=("v1",))
    return root


def _request(source, tmp_path, **extra):
    return dict(product="tessera", source=str(source), extent=EXTENT, cache_dir=str(tmp_path / "cache"), **extra)


def _array(loaded):
    dataset = gdal.Open(loaded.path)
    return dataset.ReadAsArray(), [dataset.GetRasterBand(i + 1).GetDescription() for i in range(dataset.RasterCount)]


def _pixel(loaded, lon, lat):
    from tests.fixtures.fields import from_lonlat

    dataset = gdal.Open(loaded.path)
    srs = dataset.GetSpatialRef()
    srs.AutoIdentifyEPSG()
    x, y = from_lonlat(f"EPSG:{srs.GetAuthorityCode(None)}", lon, lat)
    gt = dataset.GetGeoTransform()
    col, row = int((x - gt[0]) / gt[1]), int((y - gt[3]) / gt[5])
    return dataset.ReadAsArray(col, row, 1, 1)[:, 0, 0]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_remote_load_equals_the_local_folder(mirror, tmp_path, version):
    root, _ = mirror
    with FaultServer(root) as server:
        remote = load(tmp_path, "remote.tif", **_request(server.url, tmp_path, version=version, year=2024))
        npy_gets = [r for r in server.requests if r.method == "GET" and r.path.endswith(".npy")]
        sent = sum(server.sent(r.path) for r in {r.path: r for r in npy_gets}.values())
    local = load(tmp_path, "local.tif", **_request(root, tmp_path, version=version, year=2024))
    (remote_values, remote_bands), (local_values, local_bands) = _array(remote), _array(local)
    assert remote_bands == local_bands == [f"{'T' if version == 'v1' else 'Tv2_'}{i:03d}" for i in range(128)]
    np.testing.assert_array_equal(remote_values, local_values)
    expected = fx.mirror_expected_at(*POINT, version, 2024)
    np.testing.assert_allclose(_pixel(remote, *POINT), expected, rtol=0, atol=1e-6)
    assert (remote_values == -9999.0).all(axis=0).any(), "the water box must be nodata"
    meta = gdal.Open(remote.path).GetMetadata()
    assert meta["GEOEMBED_PRODUCT_VERSION"] == version and meta["GEOEMBED_YEAR"] == "2024"
    assert remote.result.provenance.sources[0].startswith(server.url)
    # Only rows of the tile were fetched, each with a Range header
    assert npy_gets and all((r.range or "").startswith("bytes=") for r in npy_gets), npy_gets
    whole = sum(p.stat().st_size for p in root.rglob("*.npy") if version in str(p) and "2024" in str(p))
    assert sent < whole, (sent, whole)


def test_no_year_reads_the_latest_and_the_default_version_is_v1(mirror, tmp_path):
    root, _ = mirror
    with FaultServer(root) as server:
        loaded = load(tmp_path, "latest.tif", **_request(server.url, tmp_path))
        manifests = {r.path for r in server.requests if r.path.endswith("manifest.parquet")}
    assert loaded.result.provenance.year == 2024
    assert loaded.result.provenance.product_version == "v1"
    assert manifests == {"/npy/v1/manifest.parquet"}


def test_a_manifest_url_as_source_names_its_version(mirror, tmp_path):
    root, _ = mirror
    with FaultServer(root) as server:
        url = f"{server.url}/npy/v2-2B-L~beta1/manifest.parquet"
        loaded = load(tmp_path, "m.tif", **_request(url, tmp_path, year=2023))
        refused = load_error(tmp_path / "r", **_request(url, tmp_path, year=2023, version="v1"))
    assert loaded.result.provenance.product_version == "v2" and loaded.result.provenance.year == 2023
    np.testing.assert_allclose(_pixel(loaded, *POINT), fx.mirror_expected_at(*POINT, "v2", 2023), rtol=0, atol=1e-6)
    assert "VERSION=v1" in refused and "v2" in refused


def test_a_folder_of_two_versions_is_refused_without_version(mirror, tmp_path):
    root, _ = mirror
    message = load_error(tmp_path, **_request(root, tmp_path, year=2024))
    assert_one_line(message)
    assert "v1 and v2" in message and "VERSION" in message


def test_a_version_the_files_do_not_hold_is_refused(v1_only, tmp_path):
    message = load_error(tmp_path, **_request(v1_only, tmp_path, version="v2", year=2024))
    assert_one_line(message)
    assert "VERSION=v2" in message and "v1" in message


def test_an_unknown_version_is_refused(mirror, tmp_path):
    message = load_error(tmp_path, **_request(mirror[0], tmp_path, version="v3"))
    assert "Unknown Tessera VERSION" in message


def test_dimensions_16_is_the_first_16_bands_of_v2(mirror, tmp_path):
    root, _ = mirror
    with FaultServer(root) as server:
        full = load(tmp_path, "full.tif", **_request(server.url, tmp_path, version="v2", year=2024))
        preview = load(tmp_path, "d16.tif", **_request(server.url, tmp_path, version="v2", year=2024, dimensions=16))
    (full_values, _), (preview_values, names) = _array(full), _array(preview)
    assert names == [f"Tv2_{i:03d}" for i in range(16)]
    np.testing.assert_array_equal(preview_values, full_values[:16])
    local = load(tmp_path, "d4.tif", **_request(root, tmp_path, version="v2", year=2024, dimensions=4))
    np.testing.assert_array_equal(_array(local)[0], full_values[:4])


@pytest.mark.parametrize(
    ("request_extra", "needle"),
    [
        ({"version": "v1", "dimensions": 16}, "Matryoshka"),
        ({"version": "v2", "dimensions": 10}, "not a Tessera v2 prefix"),
    ],
)
def test_dimensions_refusals(mirror, tmp_path, request_extra, needle):
    message = load_error(tmp_path, **_request(mirror[0], tmp_path, year=2024, **request_extra))
    assert_one_line(message)
    assert needle in message


def test_dimensions_and_version_are_refused_for_other_products(mirror, tmp_path):
    for extra, name in (({"dimensions": 16}, "DIMENSIONS"), ({"version": "v2"}, "VERSION")):
        message = load_error(tmp_path, product="generic", source=str(mirror[0]), **extra)
        assert_one_line(message)
        assert f"{name} applies to Tessera only" in message


def test_change_refuses_v1_against_v2(mirror, tmp_path):
    root, _ = mirror
    first = load(tmp_path, "v1.tif", **_request(root, tmp_path, version="v1", year=2024))
    second = load(tmp_path, "v2.tif", **_request(root, tmp_path, version="v2", year=2024))
    with pytest.raises(GeoEmbedError) as info:
        check_same_bands(EmbeddingTiff(first.path), EmbeddingTiff(second.path))
    assert_one_line(str(info.value))
    assert "tessera v1" in str(info.value) and "tessera v2" in str(info.value)


@pytest.mark.parametrize("remote", [True, False])
def test_coverage_lists_exactly_the_mirror_tiles(mirror, tmp_path, remote):
    root, built = mirror
    with FaultServer(root) as server:
        source = server.url if remote else str(root)
        found, tiles = tessera_coverage.coverage(source, BOTH_TILES, None, "v2", cache_dir=str(tmp_path / "c"))
        _, one_year = tessera_coverage.coverage(source, EXTENT, 2023, "v2", cache_dir=str(tmp_path / "c"))
        _, nothing = tessera_coverage.coverage(source, (10.0, 10.0, 10.1, 10.1), 2024, "v2", cache_dir=str(tmp_path / "c"))
    assert found.name == "v2"
    listed = {(t.year, t.name): (t.grid_bytes, t.scales_bytes) for t in tiles}
    assert listed == built["v2"]["sizes"]
    # Cells are the published 0.1 degree ones (the fixture's tiles are 0.01 degree apart, so both meet EXTENT)
    assert [(t.year, t.name) for t in one_year] == [(2023, "grid_5.99_45.00"), (2023, "grid_6.00_45.00")]
    assert nothing == []
    assert "4 tile(s)" in tessera_coverage.summary(found, tiles, None)


def _fault_request(server, tmp_path):
    return _request(server.url, tmp_path, version="v1", year=2024)


TILE = "/npy/v1/2024/grid_5.99_45.00/grid_5.99_45.00.npy"


def test_a_truncated_tile_is_refused_in_one_line(mirror, tmp_path):
    root, _ = mirror
    data = (root / TILE.lstrip("/")).read_bytes()
    with FaultServer(root) as server:
        server.add(TILE, data[: len(data) // 2])
        message = load_error(tmp_path / "out", **_fault_request(server, tmp_path))
    assert_one_line(message)
    assert "grid_5.99_45.00.npy" in message and "manifest says" in message


def test_a_tile_of_the_wrong_size_is_refused_in_one_line(mirror, tmp_path):
    root, _ = mirror
    data = (root / TILE.lstrip("/")).read_bytes()
    with FaultServer(root) as server:
        server.add(TILE, data + b"\0" * 640)
        message = load_error(tmp_path / "out", **_fault_request(server, tmp_path))
    assert_one_line(message)
    assert "manifest says" in message


def test_a_server_error_is_retried_then_refused_in_one_line(mirror, tmp_path):
    root, _ = mirror
    with FaultServer(root) as server:
        server.add(TILE, script=[Status(500)], methods=("GET",))
        message = load_error(tmp_path / "out", **_fault_request(server, tmp_path))
        tries = server.count(TILE)
    assert_one_line(message)
    assert "HTTP 500" in message and tries == http_client.RETRIES + 1


def test_a_body_shorter_than_announced_is_refused_in_one_line(mirror, tmp_path):
    root, _ = mirror
    with FaultServer(root) as server:
        server.add(TILE, script=[WrongLength(5000)], methods=("GET",))
        message = load_error(tmp_path / "out", **_fault_request(server, tmp_path))
    assert_one_line(message)
    assert "cut short" in message


def test_a_missing_landmask_is_refused_in_one_line(mirror, tmp_path):
    root, _ = mirror
    with FaultServer(root) as server:
        server.add("/landmasks/v1/grid_5.99_45.00.tiff", script=[Status(404)], methods=("GET", "HEAD"))
        message = load_error(tmp_path / "out", **_fault_request(server, tmp_path))
    assert_one_line(message)
    assert "HTTP 404" in message


def test_years_over_https_skip_a_year_the_manifest_lacks(mirror, tmp_path):
    """A YEARS run reads each year from the served manifest, on one grid; a year it lists no tile for is skipped."""
    from geoembed.loaders.load import LoadRequest
    from geoembed.loaders.years import run_years

    root, _ = mirror
    output = tmp_path / "tessera.tif"
    request = LoadRequest(output=str(output), **_request("", tmp_path, version="v1"))
    with FaultServer(root) as server:
        request.source = server.url
        results = run_years(request, [2019, 2023, 2024])
    assert [r.provenance.year for r in results] == [2023, 2024]
    assert sorted(p.name for p in tmp_path.glob("tessera_*.tif")) == ["tessera_2023.tif", "tessera_2024.tif"]
    grids = {(r.grid.x0, r.grid.y0, r.grid.width, r.grid.height) for r in results}
    assert len(grids) == 1
