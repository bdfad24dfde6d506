"""Distributed runs in two passes over one set of pieces, for analyses that need a statistic of the whole area
between computing and writing (geoembed:change and geoembed:trajectory: Otsu's threshold over all distances).

Pass 1 computes each piece into a scratch file of the piece (the analysis's own scratch file, made for the piece) and
leaves what the client adds up beside it: integer histograms and per-row counts, so the sums, and the threshold found
from them, are exactly those of a run in QGIS. These tallies go through the scratch folder rather than as the tasks'
results: with thousands of pieces the client then holds one piece's histograms at a time, not all of them. Pass 2
writes each piece's outputs from its scratch file; the client merges the pieces. Both passes and the merge share one
cluster session, one layout and one scratch folder.

An analysis computes a piece as it computes a whole raster: its inputs are seen on the piece's own grid
(PieceRaster), reading the same windows of the output grid that a run in QGIS reads.
"""

import math
import os
from contextlib import ExitStack

import numpy as np

from ...loaders.errors import GeoEmbedError
from ...loaders.model import EmbeddingRaster
from ...loaders.open import open_embeddings
from ...loaders.raster.grid import Window
from ...loaders.raster.writer import BLOCK
from .cluster import connect
from .pieces import Layout, Scratch, layout_for
from .runner import merge_pieces, run_tasks
from .tasks import WorkerLog


class PieceRaster(EmbeddingRaster):
    """An input raster on a piece's own grid (the piece's north-west pixel is (0, 0)); reads go to the same window
    of the output grid."""

    def __init__(self, raster, piece):
        self.raster = raster
        self.piece = piece
        self.grid = raster.grid.window_grid(piece.window)
        self.band_names = raster.band_names
        self.provenance = raster.provenance

    def read(self, window):
        return self.raster.read(self.piece.shift(window))

    def close(self):
        self.raster.close()


def local_window(piece, window):
    """A window of the output grid as a window of the piece's own grid (the inverse of Piece.shift)."""
    return Window(window.col - piece.window.col, window.row - piece.window.row, window.width, window.height)


def piece_rows(piece):
    """The output rows a piece covers (its per-row counts add into these)."""
    return slice(piece.window.row, piece.window.row + piece.window.height)


def pass_file(scratch_path, piece, kind):
    """A piece's pass-1 scratch file in the run's scratch folder (removed with it)."""
    return os.path.join(scratch_path, f"piece-{piece.index:06d}-{kind}.npy")


def save_tallies(scratch_path, piece, kind, **arrays):
    """A piece's counts for the client, in the scratch folder (see the module docstring)."""
    np.savez(os.path.join(scratch_path, f"piece-{piece.index:06d}-{kind}.npz"), **arrays)


def open_checked(source, grid, allow_outside, name):
    """A worker's own opening of an input; a different grid than the client opened it on is an error."""
    raster = open_embeddings(source, WorkerLog(), allow_paths_outside_mirror=allow_outside)
    if raster.grid != grid:
        raster.close()
        raise GeoEmbedError(f"{name} {source} changed while the cluster worked on it; run again.")
    return raster


def aligned_layout(grid, workers, read_block, block=BLOCK, piece_blocks=None):
    """layout_for's pieces, enlarged to a whole number of read blocks as well: pass 1 then reads, piece by piece,
    exactly the windows a run in QGIS reads (a nearest-neighbour resampling maps pixel centres from each window's
    origin: other windows could round a tie the other way)."""
    layout = layout_for(grid, workers, block, piece_blocks)
    step = math.lcm(block, read_block) // block
    side = layout.size // block
    aligned = -(-side // step) * step
    return layout if aligned == side else Layout(grid, aligned, block)


class TwoPassRun:
    """The cluster side of a two-pass run: start(), run(pass 1), run(pass 2), merge(specs); close() in all cases
    removes the scratch folder and ends a session it opened.

    read_block: the analysis's read block (pieces hold whole ones); piece_blocks: blocks per side of a piece (default:
    layout_for's choice); session: an open cluster session to use (default: one opened on settings)."""

    def __init__(self, settings, grid, output, log, read_block=BLOCK, piece_blocks=None, session=None):
        self.settings = settings
        self.grid = grid
        self.output = output
        self.log = log
        self.read_block = read_block
        self.piece_blocks = piece_blocks
        self.session = session
        self.scratch = None
        self.layout = None
        self._stack = ExitStack()

    def start(self):
        self.scratch = Scratch(self.output).create()
        if self.session is None:
            self.session = self._stack.enter_context(connect(self.settings, self.log))
        self.layout = aligned_layout(self.grid, self.session.worker_count(), self.read_block, BLOCK, self.piece_blocks)
        pieces, size = len(self.layout.pieces), self.layout.size
        self.log.info(f"{pieces} task(s) of up to {size} x {size} pixels on the Dask cluster, in two passes.")

    def run(self, function, job, progress=None):
        """function(job, piece, scratch folder) on every piece; their results in piece order."""
        job = dict(job, grid=self.grid, block=self.layout.block)
        return run_tasks(self.session, function, job, self.layout, self.scratch, self.log, progress)

    def tallies(self, kind):
        """(piece, {name: array}) of every piece's save_tallies(kind), one piece at a time."""
        for piece in self.layout.pieces:
            with np.load(os.path.join(self.scratch.path, f"piece-{piece.index:06d}-{kind}.npz")) as saved:
                yield piece, {name: saved[name] for name in saved.files}

    def merge(self, specs, progress=None):
        """The outputs from the pieces of the last pass; the workers are let go first (as jobs.run_job does)."""
        self._stack.close()
        merge_pieces(self.grid, specs, self.layout, self.scratch, progress, self.log.is_cancelled)

    def close(self):
        try:
            self._stack.close()
        finally:
            if self.scratch is not None:
                self.scratch.remove()
