"""Similarity and classification on a local Dask cluster (2 worker processes) over a 4-tile region: the same files,
bit for bit, as a run in this process; a cancel or a failing task leaves nothing behind; no dask, one line."""

import importlib.util
import os
import sys
import threading
import time

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis import classify
from geoembed.analysis.distributed import cluster, jobs
from geoembed.analysis.distributed.pieces import Layout, layout_for
from geoembed.analysis.similarity import SimilarityRaster, query_vector
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.open import open_embeddings
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.support.four_tiles import build_four_tiles
from tests.unit.helpers import assert_one_line

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")
WORKERS = 2


class Log:
    """The loaders' log; cancels once `cancel_at` progress calls were made (None: never)."""

    def __init__(self, cancel_at=None):
        self.fractions = []
        self.cancel_at = cancel_at

    def info(self, message):
        pass

    warning = debug = info

    def progress(self, fraction):
        self.fractions.append(fraction)

    def is_cancelled(self):
        return self.cancel_at is not None and len(self.fractions) >= self.cancel_at


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return str(build_four_tiles(tmp_path_factory.mktemp("four-tiles")))


@pytest.fixture
def raster(region):
    opened = open_embeddings(region, Log())
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def session():
    with cluster.connect(cluster.ClusterSettings(cluster.LOCAL, WORKERS)) as live:
        yield live


def pixels_and_metadata(path):
    dataset = gdal.Open(str(path))
    bands = [dataset.GetRasterBand(i + 1) for i in range(dataset.RasterCount)]
    values = dataset.ReadAsArray()
    facts = (
        dataset.GetGeoTransform(),
        dataset.GetProjection(),
        dataset.GetMetadata(),
        [(band.DataType, band.GetNoDataValue(), band.GetDescription(), band.GetBlockSize()) for band in bands],
    )
    return values, facts


def assert_same_file(expected, got):
    expected_values, expected_facts = pixels_and_metadata(expected)
    got_values, got_facts = pixels_and_metadata(got)
    assert got_values.dtype == expected_values.dtype
    assert got_values.tobytes() == expected_values.tobytes()  # bit for bit, nodata and NaN included
    assert got_facts == expected_facts


def query_of(raster, negative=False):
    block = raster.read(next(raster.grid.blocks(512)))
    rows, cols = ([300, 20], [40, 410]) if negative else ([100, 120, 230], [100, 500, 30])
    return query_vector(block.values[:, rows, cols].T)


def test_layout_pieces_are_whole_blocks_covering_the_grid_once():
    grid = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 3000, 1300)
    layout = Layout(grid, 2, 512)
    seen = np.zeros((grid.height, grid.width), dtype=np.int64)
    for piece in layout.pieces:
        window = piece.window
        assert window.col % 1024 == 0 and window.row % 1024 == 0
        seen[window.row : window.row + window.height, window.col : window.col + window.width] += 1
        for block in grid.blocks(512):
            inside = window.col <= block.col < window.col + window.width and window.row <= block.row < window.row + window.height
            assert (layout.piece_of(block) == piece) == inside
    assert (seen == 1).all()
    # Pieces shrink until each worker gets two tasks, never below one block.
    assert layout_for(grid, 1, 512).size == 2048
    assert layout_for(grid, 3, 512).size == 1024  # 3 x 2 pieces
    assert layout_for(grid, 4, 512).size == 512
    assert layout_for(Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 300, 300), 8, 512).size == 512


def test_without_dask_cluster_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    for value in ("local", "tcp://127.0.0.1:8786"):
        with pytest.raises(GeoEmbedError) as error:
            cluster.parse(value)
        message = assert_one_line(error.value)
        assert "apt install python3-distributed" in message and 'pip install "dask[distributed]"' in message
    assert cluster.parse("") is None  # an empty CLUSTER never needs dask
    assert cluster.parse("   ") is None


@needs_dask
def test_parse_cluster_values():
    assert cluster.parse("local", 3) == cluster.ClusterSettings("local", 3)
    assert cluster.parse("LOCAL") == cluster.ClusterSettings("local", 0)
    assert cluster.parse("scheduler.example.org:8786") == cluster.ClusterSettings("tcp://scheduler.example.org:8786")
    assert cluster.parse("tls://10.0.0.5:8786").address == "tls://10.0.0.5:8786"
    with pytest.raises(GeoEmbedError) as error:
        cluster.parse("my cluster")
    assert "tcp://host:8786" in assert_one_line(error.value)


@needs_dask
def test_unreachable_scheduler_is_one_line(tmp_path):
    settings = cluster.parse("tcp://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(GeoEmbedError) as error, cluster.connect(settings):
        pass
    assert "tcp://127.0.0.1:9" in assert_one_line(error.value)


@needs_dask
def test_core_shares_split_the_cores_among_the_workers():
    assert cluster.core_shares([0, 1], 2) == [[0], [1]]
    assert cluster.core_shares([0, 1], 1) == [[0, 1]]
    assert cluster.core_shares([0, 1, 2, 3, 4, 5], 4) == [[0], [1, 2], [3], [4, 5]]
    assert cluster.core_shares([2, 5], 5) == [[2], [5], [2], [5], [2]]  # more workers than cores: one each in turn


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="threads are pinned on Linux only")
def test_local_workers_run_on_their_own_cores(session):
    """Every thread of each local worker (the ones it starts later too) on that worker's share of the cores."""

    def affinities():
        mask = {frozenset(os.sched_getaffinity(int(thread))) for thread in os.listdir("/proc/self/task")}
        started = []
        thread = threading.Thread(target=lambda: started.append(frozenset(os.sched_getaffinity(0))))
        thread.start()
        thread.join()
        return sorted(mask | set(started), key=sorted)

    shares = cluster.core_shares(cluster.usable_cores(), WORKERS)
    found = session.client.run(affinities)
    assert sorted(sorted(map(sorted, masks)) for masks in found.values()) == sorted([[share] for share in shares])


def test_workers_that_cannot_be_pinned_run_unpinned(monkeypatch):
    def refuse(client):
        raise OSError("no /proc here")

    monkeypatch.setattr(cluster, "_pin_workers", refuse)
    with cluster.connect(cluster.ClusterSettings(cluster.LOCAL, 1)) as live:
        assert live.client.submit(sum, [1, 2]).result() == 3


@pytest.mark.parametrize("negative", [False, True], ids=["query", "query-and-counter-examples"])
def test_similarity_on_two_workers_equals_the_run_in_process(tmp_path, region, raster, session, negative):
    query = query_of(raster)
    counter = query_of(raster, negative=True) if negative else None
    heatmap = SimilarityRaster(raster, query, counter, 25)
    expected = OutputSpec(str(tmp_path / "in-process.tif"), ("similarity",), metadata={"GEOEMBED_ANALYSIS": "test"})
    write_rasters(raster.grid, [expected], lambda w: [heatmap.read(w)])
    spec = OutputSpec(str(tmp_path / "cluster.tif"), ("similarity",), metadata={"GEOEMBED_ANALYSIS": "test"})
    log = Log()
    top = jobs.similarity(None, region, False, raster.grid, query, counter, 25, spec, log, session=session, piece_blocks=1)
    assert_same_file(expected.path, spec.path)
    assert top.scores.tobytes() == heatmap.top.scores.tobytes()
    assert top.rows.tolist() == heatmap.top.rows.tolist() and top.cols.tolist() == heatmap.top.cols.tolist()
    assert log.fractions[-1] == pytest.approx(1.0) and log.fractions == sorted(log.fractions)
    assert sorted(os.listdir(tmp_path)) == ["cluster.tif", "in-process.tif"]  # no scratch folder, no piece


def trained_model(raster, tmp_path, method):
    """A model trained on pixels of three places, saved and loaded back as geoembed:classify does."""
    block = raster.read(next(raster.grid.blocks(512)))
    features, labels = [], []
    for label, (row, col) in enumerate([(50, 50), (200, 300), (400, 100)]):
        patch = block.values[:, row : row + 20, col : col + 20].reshape(64, -1).T
        features.append(patch)
        labels.append(np.full(len(patch), label))
    estimator = classify.make_model(method).fit(np.concatenate(features), np.concatenate(labels))
    model = classify.TrainedModel(estimator, ["water", "crops", "town"], raster.band_names, "aef", method)
    return classify.load_model(model.save(str(tmp_path / "model.npz")))


@needs_dask
@pytest.mark.parametrize("method", ["logistic_regression", "nearest_centroid"])
def test_classify_on_two_workers_equals_the_run_in_process(tmp_path, region, raster, session, method):
    model = trained_model(raster, tmp_path, method)
    producer = classify.ClassRasters(raster, model)
    meta = {"GEOEMBED_CLASSES": "|".join(model.class_names)}

    def specs(prefix):
        return [
            OutputSpec(str(tmp_path / f"{prefix}-classes.tif"), ("class",), gdal.GDT_Byte, 0, meta),
            OutputSpec(str(tmp_path / f"{prefix}-confidence.tif"), ("confidence",), gdal.GDT_Float32, -1.0, meta),
        ]

    try:
        write_rasters(raster.grid, specs("in-process"), lambda w: producer.produce(w))
    finally:
        if hasattr(producer, "close"):
            producer.close()
    jobs.classify(None, region, False, raster.grid, model, specs("cluster"), Log(), session=session, piece_blocks=1)
    for expected, got in zip(specs("in-process"), specs("cluster")):
        assert_same_file(expected.path, got.path)
    classes = gdal.Open(specs("cluster")[0].path).ReadAsArray()
    assert set(np.unique(classes)) <= {0, 1, 2, 3} and len(np.unique(classes)) >= 3  # a real map, nodata box included


def child_pids():
    """The processes this test process has started so far (and theirs)."""
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def assert_workers_end(before, within_s=60):
    """Every process started since child_pids() gave `before` ends (zombies count as ended) within within_s."""
    import psutil

    def alive():
        started = [child for child in psutil.Process().children(recursive=True) if child.pid not in before]
        return [child for child in started if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]

    deadline = time.monotonic() + within_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    running = alive()
    assert not running, [child.cmdline() for child in running]


@needs_dask
def test_cancel_stops_every_worker_and_leaves_no_piece(tmp_path, region, raster):
    before = child_pids()
    spec = OutputSpec(str(tmp_path / "similarity.tif"), ("similarity",))
    log = Log(cancel_at=1)  # Cancel clicked once the first piece is done
    settings = cluster.ClusterSettings(cluster.LOCAL, WORKERS)
    with pytest.raises(Cancelled):
        jobs.similarity(settings, region, False, raster.grid, query_of(raster), None, 5, spec, log, piece_blocks=1)
    assert len(log.fractions) == 1
    assert os.listdir(tmp_path) == []  # no output, no scratch folder, no piece
    assert_workers_end(before)


@needs_dask
def test_a_failing_task_is_one_line_and_leaves_nothing(tmp_path, raster, session):
    spec = OutputSpec(str(tmp_path / "similarity.tif"), ("similarity",))
    missing = str(tmp_path / "gone")  # the workers cannot open it
    with pytest.raises(GeoEmbedError) as error:
        jobs.similarity(None, missing, False, raster.grid, query_of(raster), None, 5, spec, Log(), session=session)
    assert "gone" in assert_one_line(error.value)
    assert os.listdir(tmp_path) == []


@needs_dask
def test_a_changed_input_is_refused_by_the_workers(tmp_path, region, raster, session):
    spec = OutputSpec(str(tmp_path / "similarity.tif"), ("similarity",))
    other = Grid(raster.grid.crs, raster.grid.x0 + 10, raster.grid.y0, 10.0, 10.0, raster.grid.width, raster.grid.height)
    with pytest.raises(GeoEmbedError) as error:
        jobs.similarity(None, region, False, other, query_of(raster), None, 5, spec, Log(), session=session)
    assert "changed" in assert_one_line(error.value)
    assert os.listdir(tmp_path) == []
