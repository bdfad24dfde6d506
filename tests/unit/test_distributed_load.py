"""geoembed:load on a local Dask cluster (2 worker processes): the same file, bit for bit and metadata for metadata,
as loaders.load.run in this process - AlphaEarth from a folder and from an index (Float32 and Int16, with OVERVIEWS),
Tessera, several YEARS; a cancel stops every worker and leaves neither piece nor output; a changed SOURCE is one line."""

import importlib.util
import os
from pathlib import Path

import pytest
from osgeo import gdal

from geoembed.analysis.distributed import cluster, load_job
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.load import LoadRequest, run
from geoembed.loaders.years import run_years
from tests.fixtures.all_products import build_all
from tests.support.four_tiles import build_four_tiles
from tests.unit.helpers import QuietLog, assert_one_line, leftovers
from tests.unit.test_distributed import Log, assert_workers_end, child_pids

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
pytestmark = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")
WORKERS = 2
INDEX_EXTENT = (5.976, 44.99, 6.03, 45.02)  # lon/lat across 6°E: two zones' tiles of the fixture mirror, 2023 and 2024
SEAM_WEST = (5.9862, 44.9962, 6.0038, 45.0038)  # Tessera fixture tiles, UTM 31N


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


@pytest.fixture(scope="module")
def index(aef_mirror):
    return str(aef_mirror / "v1" / "annual" / "aef_index.parquet")


@pytest.fixture(scope="module")
def tessera(tmp_path_factory):
    return build_all(tmp_path_factory.mktemp("products"), ["tessera"])["tessera"]


@pytest.fixture(scope="module")
def session():
    with cluster.connect(cluster.ClusterSettings(cluster.LOCAL, WORKERS)) as live:
        yield live


def facts(path):
    """Pixels (bytes) and everything a reader sees of a GeoTIFF: grid, CRS, metadata, per band type, nodata, name,
    scale, offset and block size, and the overviews' pixels."""
    dataset = gdal.Open(str(path))
    bands = [dataset.GetRasterBand(i + 1) for i in range(dataset.RasterCount)]
    overviews = [[band.GetOverview(level).ReadAsArray().tobytes() for level in range(band.GetOverviewCount())] for band in bands]
    return {
        "pixels": dataset.ReadAsArray().tobytes(),  # bit for bit, nodata included
        "grid": (dataset.GetGeoTransform(), dataset.RasterXSize, dataset.RasterYSize, dataset.GetProjection()),
        "metadata": dataset.GetMetadata(),
        "structure": dataset.GetMetadata("IMAGE_STRUCTURE"),
        "bands": [
            (b.DataType, b.GetNoDataValue(), b.GetDescription(), b.GetScale(), b.GetOffset(), b.GetBlockSize()) for b in bands
        ],
        "overviews": overviews,
    }


def assert_same_load(expected, got):
    """Two loads: the same LoadResult and the same file (and OUTPUT.ovr or none, as the expected one has)."""
    assert (got.product, got.grid, got.provenance.year) == (expected.product, expected.grid, expected.provenance.year)
    assert facts(got.output) == facts(expected.output)
    assert os.path.exists(got.output + ".ovr") == os.path.exists(expected.output + ".ovr")


def both(tmp_path, session, **fields):
    """(in-process LoadResult, cluster LoadResult) of one request, written beside each other; the cluster's log."""
    expected = run(LoadRequest(output=str(tmp_path / "in-process.tif"), **fields), QuietLog())
    log = Log()
    request = LoadRequest(output=str(tmp_path / "cluster.tif"), **fields)
    got = load_job.run(None, request, log, log.progress, log.is_cancelled, session=session, piece_blocks=1)
    return expected, got, log


@pytest.mark.parametrize("output_type", ["float32", "int16"])
def test_aef_folder_on_two_workers_equals_the_run_in_process(tmp_path, region, session, output_type):
    expected, got, log = both(tmp_path, session, product="aef", source=region, output_type=output_type)
    assert got.grid.width > 512 and got.grid.height > 512  # several pieces
    assert_same_load(expected, got)
    assert log.fractions[-1] == pytest.approx(1.0) and log.fractions == sorted(log.fractions)
    assert sorted(os.listdir(tmp_path)) == ["cluster.tif", "in-process.tif"]  # no scratch folder, no piece


@pytest.mark.parametrize("output_type", ["float32", "int16"])
def test_overviews_are_those_of_the_run_in_process(tmp_path, region, session, output_type):
    expected, got, _ = both(tmp_path, session, source=region, output_type=output_type, overviews=True)  # PRODUCT=auto
    assert facts(got.output)["overviews"] or os.path.exists(got.output + ".ovr")
    assert_same_load(expected, got)
    if output_type == "float32":  # the run in process writes OUTPUT.ovr beside a Float32 output
        assert facts(got.output + ".ovr") == facts(expected.output + ".ovr")


def test_aef_index_with_an_extent_equals_the_run_in_process(tmp_path, index, session):
    expected, got, _ = both(tmp_path, session, source=index, extent=INDEX_EXTENT, year=2024)
    assert_same_load(expected, got)


def test_tessera_equals_the_run_in_process(tmp_path, tessera, session):
    fields = {"product": "tessera", "source": str(tessera["download_dir"]), "extent": SEAM_WEST, "resolution": 2.5}
    expected, got, _ = both(tmp_path, session, **fields)
    assert got.grid.width > 512  # several pieces
    assert_same_load(expected, got)


@pytest.mark.parametrize("output_type", ["float32", "int16"])
def test_years_on_two_workers_equal_the_run_in_process(tmp_path, index, session, output_type):
    fields = {"source": index, "extent": INDEX_EXTENT, "output_type": output_type}
    expected = run_years(LoadRequest(output=str(tmp_path / "here" / "aef.tif"), **fields), [2023, 2024], QuietLog())
    request = LoadRequest(output=str(tmp_path / "cluster" / "aef.tif"), **fields)
    got = load_job.run_years_on_cluster(None, request, [2023, 2024], QuietLog(), session=session, piece_blocks=1)
    assert [os.path.basename(r.output) for r in got] == ["aef_2023.tif", "aef_2024.tif"]
    for here, there in zip(expected, got):
        assert_same_load(here, there)
    assert sorted(os.listdir(tmp_path / "cluster")) == ["aef_2023.tif", "aef_2024.tif"]


def test_cancel_stops_every_worker_and_leaves_nothing(tmp_path, region):
    before = child_pids()
    log = Log(cancel_at=1)  # Cancel clicked once the first piece is done
    settings = cluster.ClusterSettings(cluster.LOCAL, WORKERS)
    request = LoadRequest(output=str(tmp_path / "aef.tif"), product="aef", source=region, overviews=True)
    with pytest.raises(Cancelled):
        load_job.run(settings, request, log, log.progress, log.is_cancelled, piece_blocks=1)
    assert len(log.fractions) == 1
    assert leftovers(tmp_path) == [] and os.listdir(tmp_path) == []  # no output, no .ovr, no scratch folder
    assert_workers_end(before)


def test_a_changed_source_is_refused_by_the_workers(tmp_path, region, session, monkeypatch):
    """The workers plan SOURCE again: when it no longer gives the client's grid, one line and nothing written."""
    real_write = load_job._write

    def other_grid(settings, request, raster, grid, *rest):
        moved = type(grid)(grid.crs, grid.x0 + 10, grid.y0, grid.res_x, grid.res_y, grid.width, grid.height)
        raster.grid = moved  # as if the client had planned another grid than the workers find
        return real_write(settings, request, raster, moved, *rest)

    monkeypatch.setattr(load_job, "_write", other_grid)
    request = LoadRequest(output=str(tmp_path / "aef.tif"), product="aef", source=region)
    with pytest.raises(GeoEmbedError) as error:
        load_job.run(None, request, QuietLog(), session=session)
    assert "changed" in assert_one_line(error.value)
    assert os.listdir(tmp_path) == []


def test_worker_request_keeps_the_index_cache_only_for_local_workers():
    request = LoadRequest(output="out.tif", source="https://mirror.example/aef_index.parquet", cache_dir="/home/me/.cache")
    assert load_job.worker_request(cluster.ClusterSettings(cluster.LOCAL, 2), request).cache_dir == "/home/me/.cache"
    assert load_job.worker_request(None, request).cache_dir == "/home/me/.cache"
    remote = cluster.ClusterSettings("tcp://scheduler:8786")
    assert load_job.worker_request(remote, request).cache_dir is None


def test_years_cancelled_on_the_cluster_remove_the_years_written(tmp_path, index, session):
    log = Log(cancel_at=3)  # 2023's piece and merge are done: Cancel during 2024
    request = LoadRequest(output=str(tmp_path / "aef.tif"), source=index, extent=INDEX_EXTENT)
    with pytest.raises(Cancelled):
        load_job.run_years_on_cluster(None, request, [2023, 2024], log, log.progress, log.is_cancelled, session=session)
    assert leftovers(tmp_path) == []


def test_a_remote_mirror_is_read_by_range_requests_from_the_workers(tmp_path, region, session):
    """Workers read the tiles of a mirror over HTTP, each only what its pieces need: the cluster reads about what the
    run in process reads (not whole tiles per worker), and writes the same file."""
    from tests.support.four_tiles import lonlat_points
    from tests.support.range_server import RangeServer

    root = Path(region).parents[3]  # root/v1/annual/2024/31N
    (west, south), (east, north) = lonlat_points(1)[0], lonlat_points(4)[-1]
    extent = (west - 0.008, south - 0.008, east + 0.008, north + 0.008)
    fields = {"year": 2024, "extent": extent, "cache_dir": str(tmp_path / "cache")}
    with RangeServer(root) as server:
        sent = {}
        for name in ("in-process", "cluster"):
            server.reset()
            request = LoadRequest(output=str(tmp_path / f"{name}.tif"), source=server.url, **fields)
            if name == "in-process":
                expected = run(request, QuietLog())
            else:
                got = load_job.run(None, request, QuietLog(), session=session, piece_blocks=1)
            sent[name] = server.bytes_sent
            tile_gets = [header for method, path, header in server.requests if method == "GET" and path.endswith(".tiff")]
            assert tile_gets and all(tile_gets), "a whole tile was fetched"
    assert got.grid.width > 512
    assert_same_load(expected, got)
    # The four small fixture tiles are all under both pieces: each worker reads their headers and the tile blocks
    # its piece cuts through; on full-size tiles a piece lies under one or two tiles.
    assert sent["cluster"] < 2 * sent["in-process"]
