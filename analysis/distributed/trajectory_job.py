"""geoembed:trajectory on a Dask cluster, in two passes (passes.py) with the analysis code of a run in QGIS.

Pass 1: each worker opens every year's input itself (in year order, each put on the first one's grid as in QGIS) and
runs Trajectory.compute on its piece, keeping the piece's distances (and anomalies) in a scratch file; the client adds
up the pieces' histograms and per-row counts into its own Trajectory, which then gives the threshold (Otsu over all
consecutive distances), the percentile and the valid areas of a run in QGIS. Pass 2: each worker writes its piece's
outputs from the scratch file with Trajectory.produce and counts changed pixels per pair and row; the client merges
the pieces, and its Trajectory gives the per-pair table and the summary.
"""

import numpy as np

from ..change import same_grid
from ..resample import nearest
from ..trajectory import Trajectory
from .passes import PieceRaster, TwoPassRun, local_window, open_checked, pass_file, piece_rows, save_tallies
from .pieces import Scratch
from .runner import MERGE_SHARE
from .tasks import write_piece


class TrajectoryJob:
    """The cluster run behind a client's Trajectory (built on the client's rasters, which it never reads): compute()
    and write() stand for its compute() and write_rasters(produce), and fill the same counts.

    sources: each year's path or URL in the Trajectory's (year) order; grids: the grids the client opened them on
    (each raster's own grid, before it was put on the first one's)."""

    def __init__(self, settings, series, sources, grids, allow_outside, output, log, piece_blocks=None, session=None):
        self.series = series
        self.job = {
            "sources": list(sources),
            "grids": list(grids),
            "allow_outside": bool(allow_outside),
            "labels": list(series.labels),
            "with_anomaly": bool(series.with_anomaly),
            "read_block": series.block,
        }
        self.run = TwoPassRun(settings, series.grid, output, log, series.block, piece_blocks, session)

    def compute(self, progress=None, is_cancelled=None):
        """Pass 1 (is_cancelled: the log's, which the run looks at)."""
        self.run.start()
        self.run.run(distances_piece, self.job, progress)
        series = self.series
        for piece, tallies in self.run.tallies("trajectory"):
            rows = piece_rows(piece)
            series.counts += tallies["counts"]
            series.valid_per_row[:, rows] += tallies["valid_per_row"]
            series.any_valid_per_row[rows] += tallies["any_valid_per_row"]

    def write(self, specs, keys, progress=None):
        """Pass 2 and the merge into specs, whose blocks are produce()'s `keys`; series.threshold set."""
        progress = progress or (lambda fraction: None)
        job = dict(self.job, specs=list(specs), keys=list(keys), threshold=float(self.series.threshold))
        self.run.run(outputs_piece, job, lambda f: progress(f * (1 - MERGE_SHARE)))
        changed = np.zeros_like(self.series.changed_per_row)
        any_changed = np.zeros_like(self.series.any_changed_per_row)
        for piece, tallies in self.run.tallies("changed"):
            rows = piece_rows(piece)
            changed[:, rows] += tallies["changed_per_row"]
            any_changed[rows] += tallies["any_changed_per_row"]
        self.series.changed_per_row[:] = changed
        self.series.any_changed_per_row[:] = any_changed
        self.run.merge(specs, lambda f: progress(1 - MERGE_SHARE + f * MERGE_SHARE))

    def close(self):
        self.run.close()


def open_years(job, piece):
    """Every year's input as a PieceRaster of the piece, each on the first one's grid."""
    rasters = []
    try:
        for position, (source, grid) in enumerate(zip(job["sources"], job["grids"]), start=1):
            raster = open_checked(source, grid, job["allow_outside"], f"INPUT {position}")
            if rasters and not same_grid(rasters[0].grid, raster.grid):
                raster = nearest(raster, rasters[0].grid)
            rasters.append(raster)
    except BaseException:
        for raster in rasters:
            raster.close()
        raise
    return [PieceRaster(raster, piece) for raster in rasters]


def distances_piece(job, piece, scratch_path):
    """Pass 1 on one piece: its distances (and anomalies) into its scratch file; beside it, its histogram per pair,
    valid pixels per pair and row, and pixels with a valid pair per row."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    rasters = open_years(job, piece)
    try:
        series = Trajectory(
            rasters, job["labels"], pass_file(scratch_path, piece, "trajectory"), job["with_anomaly"], job["read_block"]
        )
    except BaseException:
        for raster in rasters:
            raster.close()
        raise
    series.compute(is_cancelled=scratch.is_cancelled)  # closes the inputs
    tallies = {"counts": series.counts, "valid_per_row": series.valid_per_row, "any_valid_per_row": series.any_valid_per_row}
    save_tallies(scratch_path, piece, "trajectory", **tallies)


class StoredTrajectory(Trajectory):
    """Pass 2 of Trajectory on a piece's grid, from the scratch file pass 1 left (produce() as in QGIS)."""

    def __init__(self, grid, scratch_path, labels, with_anomaly, threshold):  # the inputs were read and checked in pass 1
        self.grid = grid
        self.labels = list(labels)
        self.pairs = len(self.labels) - 1
        self.with_anomaly = with_anomaly
        self.scratch_path = scratch_path
        self.changed_per_row = np.zeros((self.pairs, grid.height), dtype=np.int64)
        self.any_changed_per_row = np.zeros(grid.height, dtype=np.int64)
        self.threshold = threshold
        self._scratch = np.load(scratch_path, mmap_mode="r")

    def release(self):
        """Let go of the memory map (the file stays until the scratch folder goes: a retried task may need it)."""
        self._scratch = None


def outputs_piece(job, piece, scratch_path):
    """Pass 2 on one piece: its output pieces (job["keys"] of produce(), in the specs' order); beside them, its changed
    pixels per pair and row, and per row in at least one pair."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    grid = job["grid"].window_grid(piece.window)
    path = pass_file(scratch_path, piece, "trajectory")
    series = StoredTrajectory(grid, path, job["labels"], job["with_anomaly"], job["threshold"])
    keys = job["keys"]

    def produce(window):
        blocks = series.produce(local_window(piece, window))
        return [blocks[key] for key in keys]

    try:
        write_piece(job, piece, scratch, produce)
    finally:
        series.release()
    save_tallies(
        scratch_path, piece, "changed", changed_per_row=series.changed_per_row, any_changed_per_row=series.any_changed_per_row
    )
