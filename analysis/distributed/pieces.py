"""Cutting an output grid into pieces of whole blocks, and the scratch folder the pieces are written to.

A piece is a rectangle of whole output blocks, aligned on them: a worker visits exactly the blocks a run in QGIS
visits, in the same order, so each block is computed from the same input window with the same arithmetic.
"""

import os
import shutil
import uuid
from dataclasses import dataclass

from ...loaders.errors import Cancelled, GeoEmbedError
from ...loaders.model import EmbeddingRaster
from ...loaders.raster.grid import Window
from ...loaders.raster.writer import BLOCK

PIECE_BLOCKS = 4  # blocks per side of a piece: 2048 pixels, 64 MiB per band of Float32 (a quarter of an AEF tile)
TASKS_PER_WORKER = 2  # smaller pieces when the big ones would leave workers idle
CANCELLED = "cancelled"  # a file in the scratch folder: workers stop at their next block


@dataclass(frozen=True)
class Piece:
    index: int
    window: Window  # on the output grid

    def shift(self, window):
        """A window of the piece's own grid as a window of the output grid."""
        return Window(window.col + self.window.col, window.row + self.window.row, window.width, window.height)


class Layout:
    """The pieces of a grid, piece_blocks x piece_blocks blocks each, row by row from the north."""

    def __init__(self, grid, piece_blocks, block=BLOCK):
        self.grid = grid
        self.block = block
        self.size = piece_blocks * block
        self.pieces = [Piece(index, window) for index, window in enumerate(grid.blocks(self.size))]
        self.columns = -(-grid.width // self.size)

    def piece_of(self, window):
        """The piece holding an output block."""
        return self.pieces[(window.row // self.size) * self.columns + window.col // self.size]


def layout_for(grid, workers, block=BLOCK, piece_blocks=None):
    """Pieces of PIECE_BLOCKS blocks a side, or smaller ones when that gives each worker fewer than TASKS_PER_WORKER."""
    if piece_blocks:
        return Layout(grid, piece_blocks, block)
    side = PIECE_BLOCKS
    while side > 1:
        size = side * block
        if -(-grid.width // size) * -(-grid.height // size) >= TASKS_PER_WORKER * workers:
            break
        side //= 2
    return Layout(grid, side, block)


class PieceGrid:
    """The output grid as seen by a reader that will visit only one piece's blocks: blocks() lists those."""

    def __init__(self, grid, piece):
        self._grid = grid
        self._piece = piece

    def __getattr__(self, name):
        return getattr(self._grid, name)

    def blocks(self, size):
        for window in self._grid.window_grid(self._piece.window).blocks(size):
            yield self._piece.shift(window)


class PieceView(EmbeddingRaster):
    """An input raster whose grid lists only the blocks of one piece (so a prefetching reader reads those, in the
    order they are written); reads pass through unchanged, in output-grid windows."""

    def __init__(self, raster, piece):
        self.raster = raster
        self.grid = PieceGrid(raster.grid, piece)
        self.band_names = raster.band_names
        self.provenance = raster.provenance

    def read(self, window):
        return self.raster.read(window)

    def close(self):
        self.raster.close()


class Scratch:
    """A hidden folder beside the output for the pieces; remove() deletes it and everything in it."""

    def __init__(self, output, path=None):
        folder = os.path.dirname(os.path.abspath(output))
        self.path = path or os.path.join(folder, f".{os.path.basename(output)}.geoembed-pieces-{uuid.uuid4().hex[:12]}")

    def create(self):
        os.makedirs(self.path)
        return self

    def piece_path(self, piece, output_index):
        return os.path.join(self.path, f"piece-{piece.index:06d}-{output_index}.tif")

    def cancel(self):
        """Tell workers to stop: they look for this file before each block."""
        if os.path.isdir(self.path):
            with open(os.path.join(self.path, CANCELLED), "w", encoding="utf-8"):
                pass

    def check(self):
        """Raise Cancelled when the run was cancelled; a folder the worker cannot see is a shared-folder problem."""
        if os.path.exists(os.path.join(self.path, CANCELLED)):
            raise Cancelled()
        if not os.path.isdir(self.path):
            raise GeoEmbedError(
                f"A Dask worker cannot see the output folder {os.path.dirname(self.path)}; with a remote scheduler, "
                "write OUTPUT to a folder the workers share (or the run was cancelled)."
            )

    def is_cancelled(self):
        try:
            self.check()
        except Cancelled:
            return True
        return False

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)
