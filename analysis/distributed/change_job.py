"""geoembed:change on a Dask cluster, in two passes (passes.py) with the analysis code of a run in QGIS.

Pass 1: each worker opens INPUT and INPUT_2 itself (INPUT_2 put on INPUT's grid as in QGIS) and runs
ChangeDistances.compute on its piece, keeping the piece's distances in a scratch file; the client adds up the pieces'
histograms and valid pixels per row into its own ChangeDistances, which then gives the threshold (Otsu), the
percentile and the valid area of a run in QGIS. Pass 2: each worker writes its piece's distance (and mask) from the
scratch file with ChangeDistances.produce and counts its changed pixels per row; the client merges the pieces.
"""

import numpy as np

from ..change import ChangeDistances, same_grid
from ..resample import nearest
from .passes import PieceRaster, TwoPassRun, local_window, open_checked, pass_file, piece_rows, save_tallies
from .pieces import Scratch
from .runner import MERGE_SHARE
from .tasks import write_piece

NAMES = ("INPUT", "INPUT_2")


class ChangeJob:
    """The cluster run behind a client's ChangeDistances (built on the client's rasters, which it never reads):
    compute() and write() stand for its compute() and write_rasters(produce), and fill the same counts.

    sources: the paths or URLs of INPUT and INPUT_2; grids: the grids the client opened them on (INPUT_2's own grid,
    before it was put on INPUT's)."""

    def __init__(self, settings, distances, sources, grids, allow_outside, output, log, piece_blocks=None, session=None):
        self.distances = distances
        self.job = {
            "sources": list(sources),
            "grids": list(grids),
            "allow_outside": bool(allow_outside),
            "read_block": distances.block,
        }
        self.run = TwoPassRun(settings, distances.grid, output, log, distances.block, piece_blocks, session)

    def compute(self, progress=None, is_cancelled=None):
        """Pass 1 (is_cancelled: the log's, which the run looks at)."""
        self.run.start()
        self.run.run(distances_piece, self.job, progress)
        for piece, tallies in self.run.tallies("distance"):
            self.distances.counts += tallies["counts"]
            self.distances.valid_per_row[piece_rows(piece)] += tallies["valid_per_row"]

    def write(self, specs, progress=None):
        """Pass 2 and the merge into specs (the distance, and the mask when there are two); distances.threshold set."""
        progress = progress or (lambda fraction: None)
        job = dict(self.job, specs=list(specs), threshold=float(self.distances.threshold))
        self.run.run(mask_piece, job, lambda f: progress(f * (1 - MERGE_SHARE)))
        changed = np.zeros_like(self.distances.changed_per_row)
        for piece, tallies in self.run.tallies("changed"):
            changed[piece_rows(piece)] += tallies["changed_per_row"]
        self.distances.changed_per_row[:] = changed
        self.run.merge(specs, lambda f: progress(1 - MERGE_SHARE + f * MERGE_SHARE))

    def close(self):
        self.run.close()


def open_pair(job, piece):
    """INPUT and INPUT_2 as PieceRasters of the piece, INPUT_2 on INPUT's grid."""
    (first_source, second_source), (first_grid, second_grid) = job["sources"], job["grids"]
    first = open_checked(first_source, first_grid, job["allow_outside"], NAMES[0])
    try:
        second = open_checked(second_source, second_grid, job["allow_outside"], NAMES[1])
    except BaseException:
        first.close()
        raise
    if not same_grid(first.grid, second.grid):
        second = nearest(second, first.grid)
    return PieceRaster(first, piece), PieceRaster(second, piece)


def distances_piece(job, piece, scratch_path):
    """Pass 1 on one piece: its distances into its scratch file, its histogram and valid pixels per row beside it."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    rasters = open_pair(job, piece)
    try:
        distances = ChangeDistances(*rasters, pass_file(scratch_path, piece, "distance"), job["read_block"])
    except BaseException:
        for raster in rasters:
            raster.close()
        raise
    distances.compute(is_cancelled=scratch.is_cancelled)  # closes the inputs
    save_tallies(scratch_path, piece, "distance", counts=distances.counts, valid_per_row=distances.valid_per_row)


class StoredDistances(ChangeDistances):
    """Pass 2 of ChangeDistances on a piece's grid, from the scratch file pass 1 left (produce() as in QGIS)."""

    def __init__(self, grid, scratch_path, threshold):  # the inputs were read and checked in pass 1
        self.grid = grid
        self.scratch_path = scratch_path
        self.changed_per_row = np.zeros(grid.height, dtype=np.int64)
        self.threshold = threshold
        self._scratch = np.load(scratch_path, mmap_mode="r")

    def release(self):
        """Let go of the memory map (the file stays until the scratch folder goes: a retried task may need it)."""
        self._scratch = None


def mask_piece(job, piece, scratch_path):
    """Pass 2 on one piece: its distance (and mask) pieces, and its changed pixels per row beside them."""
    scratch = Scratch("", scratch_path)
    scratch.check()
    grid = job["grid"].window_grid(piece.window)
    distances = StoredDistances(grid, pass_file(scratch_path, piece, "distance"), job["threshold"])
    count = len(job["specs"])
    try:
        write_piece(job, piece, scratch, lambda window: distances.produce(local_window(piece, window))[:count])
    finally:
        distances.release()
    save_tallies(scratch_path, piece, "changed", changed_per_row=distances.changed_per_row)
