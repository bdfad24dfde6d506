"""Change and trajectory on a local Dask cluster (2 worker processes): the same files, bit for bit, the same Otsu
threshold (from the pieces' merged histograms) and the same per-pair table as a run in this process; a year on a
half-pixel shifted grid is put on the others' grid by the workers as in QGIS; a cancel in either pass stops every
worker and leaves no piece and no output."""

import importlib.util
import os

import pytest
from osgeo import gdal

from geoembed.analysis import change, trajectory
from geoembed.analysis.distributed import cluster
from geoembed.analysis.distributed.change_job import ChangeJob
from geoembed.analysis.distributed.passes import aligned_layout
from geoembed.analysis.distributed.trajectory_job import TrajectoryJob
from geoembed.analysis.resample import nearest
from geoembed.loaders.errors import Cancelled
from geoembed.loaders.open import open_embeddings
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.support.year_rasters import YEARS, build_years
from tests.unit.test_distributed import assert_same_file, assert_workers_end, child_pids

HAS_DASK = importlib.util.find_spec("distributed") is not None
if not HAS_DASK and os.environ.get("CI"):
    pytest.fail("dask.distributed is missing: install python3-distributed (dev.sh and tools/qgis_chroot.sh do)", False)
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (apt install python3-distributed)")
WORKERS = 2
KEYS = ("distance", "break_year", "break_size", "anomaly")


class Log:
    def __init__(self):
        self.cancelled = False
        self.fractions = []

    def info(self, message):
        pass

    warning = debug = info

    def progress(self, fraction):
        self.fractions.append(fraction)

    def is_cancelled(self):
        return self.cancelled


@pytest.fixture(scope="module")
def years(tmp_path_factory):
    return build_years(tmp_path_factory.mktemp("years"))


@pytest.fixture(scope="module")
def session():
    with cluster.connect(cluster.ClusterSettings(cluster.LOCAL, WORKERS)) as live:
        yield live


def open_on_first_grid(paths):
    """(rasters as opened, their grids) then each put on the first one's grid, as the providers do."""
    rasters = [open_embeddings(path, Log()) for path in paths]
    grids = [raster.grid for raster in rasters]
    on_first = [rasters[0]] + [
        raster if change.same_grid(rasters[0].grid, raster.grid) else nearest(raster, rasters[0].grid) for raster in rasters[1:]
    ]
    return on_first, grids


def change_specs(folder):
    return [
        OutputSpec(str(folder / "distance.tif"), ("cosine_distance",), metadata={"GEOEMBED_ANALYSIS": "test"}),
        OutputSpec(str(folder / "mask.tif"), ("change",), gdal.GDT_Byte, change.MASK_NODATA, {"GEOEMBED_ANALYSIS": "test"}),
    ]


def run_change(paths, folder, session=None, settings=None, log=None, cancel_in=None):
    """geoembed:change's steps (automatic threshold): in this process without a session and settings, else on the
    cluster. Returns (threshold, separability, summary, 99th percentile). cancel_in: 'compute' or 'write'."""
    folder.mkdir()
    log = log or Log()
    rasters, grids = open_on_first_grid(paths)
    specs = change_specs(folder)
    distances = change.ChangeDistances(*rasters, change.scratch_path_for(specs[0].path))
    job = None
    if session is not None or settings is not None:
        job = ChangeJob(settings, distances, paths, grids, False, specs[0].path, log, piece_blocks=1, session=session)

    def cancel(fraction):
        log.cancelled = True

    try:
        (job or distances).compute(cancel if cancel_in == "compute" else None, log.is_cancelled)
        distances.threshold, separability = distances.automatic_threshold()
        if job is None:
            write_rasters(distances.grid, specs, lambda w: distances.produce(w)[: len(specs)])
        else:
            job.write(specs, cancel if cancel_in == "write" else None)
        return distances.threshold, separability, distances.summary(), distances.percentile(99.0)
    finally:
        if job is not None:
            job.close()
        distances.close()
        for raster in rasters:
            raster.close()


def trajectory_specs(folder, series):
    bands = {
        "distance": (tuple(series.band_names), gdal.GDT_Float32, trajectory.NODATA),
        "break_year": (("break_year",), gdal.GDT_UInt16, trajectory.BREAK_NODATA),
        "break_size": (("break_size",), gdal.GDT_Float32, trajectory.NODATA),
        "anomaly": (tuple(str(label) for label in series.labels), gdal.GDT_Float32, trajectory.NODATA),
    }
    meta = {"GEOEMBED_YEARS": ",".join(map(str, series.labels))}
    return [OutputSpec(str(folder / f"{key}.tif"), *bands[key], meta) for key in KEYS]


def run_trajectory(paths, folder, block=None, session=None, settings=None, log=None, cancel_in=None):
    """geoembed:trajectory's steps with anomalies (automatic threshold); returns (threshold, pair table, summary)."""
    folder.mkdir()
    log = log or Log()
    rasters, grids = open_on_first_grid(paths)
    output = str(folder / "distance.tif")
    series = trajectory.Trajectory(rasters, list(YEARS), trajectory.scratch_path_for(output), True, block)
    specs = trajectory_specs(folder, series)
    job = None
    if session is not None or settings is not None:
        job = TrajectoryJob(settings, series, paths, grids, False, output, log, piece_blocks=1, session=session)

    def cancel(fraction):
        log.cancelled = True

    try:
        (job or series).compute(cancel if cancel_in == "compute" else None, log.is_cancelled)
        series.threshold, _ = series.automatic_threshold()
        if job is None:
            write_rasters(series.grid, specs, lambda w: pick(series.produce(w), KEYS))  # produce() once per window
        else:
            job.write(specs, KEYS, cancel if cancel_in == "write" else None)
        return series.threshold, series.pair_summaries(), series.summary(), series.percentile(99.0)
    finally:
        if job is not None:
            job.close()
        series.close()
        for raster in rasters:
            raster.close()


def pick(blocks, keys):
    return [blocks[key] for key in keys]


def test_aligned_layout_holds_whole_read_blocks():
    grid = Grid("EPSG:32631", 0.0, 0.0, 10.0, 10.0, 5000, 2000)
    assert aligned_layout(grid, 2, 512, 512, 1).size == 512  # the read block is the output block
    assert aligned_layout(grid, 2, 256, 512, 1).size == 512  # a read block dividing it
    assert aligned_layout(grid, 2, 384, 512, 1).size == 1536  # lcm(512, 384): 3 output blocks, 4 read blocks
    assert aligned_layout(grid, 2, 384, 512, 4).size == 3072
    for piece in aligned_layout(grid, 2, 320, 512, 1).pieces:
        assert piece.window.col % 320 == 0 and piece.window.row % 320 == 0
        assert piece.window.col % 512 == 0 and piece.window.row % 512 == 0


@needs_dask
@pytest.mark.parametrize("later", [2022, 2024], ids=["same-grid", "half-pixel-shifted-grid"])
def test_change_on_two_workers_equals_the_run_in_process(tmp_path, years, session, later):
    paths = [years[2021], years[later]]
    expected = run_change(paths, tmp_path / "in-process")
    log = Log()
    got = run_change(paths, tmp_path / "cluster", session=session, log=log)
    assert got[0] == expected[0] and got[1] == expected[1]  # Otsu on the merged histograms: the same threshold
    assert got[2] == expected[2] and got[3] == expected[3]  # the same changed and valid areas
    assert 0 < expected[2]["changed_pixels"] < expected[2]["valid_pixels"]
    for spec_expected, spec_got in zip(change_specs(tmp_path / "in-process"), change_specs(tmp_path / "cluster")):
        assert_same_file(spec_expected.path, spec_got.path)
    assert sorted(os.listdir(tmp_path / "cluster")) == ["distance.tif", "mask.tif"]  # no scratch folder, no piece


@needs_dask
@pytest.mark.parametrize("block", [None, 256], ids=["default-block", "256-pixel-blocks"])
def test_trajectory_on_two_workers_equals_the_run_in_process(tmp_path, years, session, block):
    paths = [years[year] for year in YEARS]
    expected = run_trajectory(paths, tmp_path / "in-process", block)
    got = run_trajectory(paths, tmp_path / "cluster", block, session=session)
    threshold, table, summary, top = got
    assert threshold == expected[0]  # Otsu over all pairs, on the merged histograms
    assert table == expected[1]  # the per-pair table: pixels, areas and fractions
    assert summary == expected[2] and top == expected[3]
    assert all(row["changed_pixels"] < row["valid_pixels"] for row in table)
    assert table[0]["changed_pixels"] > 0 and table[1]["changed_pixels"] > 0  # the boxes turned in 2022 and 2023
    for key in KEYS:
        assert_same_file(tmp_path / "in-process" / f"{key}.tif", tmp_path / "cluster" / f"{key}.tif")
    assert sorted(os.listdir(tmp_path / "cluster")) == sorted(f"{key}.tif" for key in KEYS)


@needs_dask
@pytest.mark.parametrize("name", ["change", "trajectory"])
@pytest.mark.parametrize("cancel_in", ["compute", "write"], ids=["pass-1", "pass-2"])
def test_cancel_stops_every_worker_and_leaves_no_piece(tmp_path, years, name, cancel_in):
    before = child_pids()
    settings = cluster.ClusterSettings(cluster.LOCAL, WORKERS)
    log = Log()
    with pytest.raises(Cancelled):
        if name == "change":
            run_change([years[2021], years[2024]], tmp_path / "out", settings=settings, log=log, cancel_in=cancel_in)
        else:
            run_trajectory([years[y] for y in YEARS], tmp_path / "out", settings=settings, log=log, cancel_in=cancel_in)
    assert log.cancelled
    assert os.listdir(tmp_path / "out") == []  # no output, no scratch folder, no piece
    assert_workers_end(before)
