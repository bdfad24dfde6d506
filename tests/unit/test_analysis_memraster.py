"""A tiny in-memory EmbeddingRaster for the analysis tests, with a spy on read(); sanity tests of the fake itself.

Other test_analysis_* files import MemRaster and random_raster from here. Nodata pixels hold NODATA in every
band, so a tool that forgets the mask produces visibly wrong values.
"""

import numpy as np
import pytest

from geoembed.loaders.model import NODATA, EmbeddingBlock, EmbeddingRaster, Provenance
from geoembed.loaders.raster.grid import Grid, Window

UTM31 = "EPSG:32631"


class MemRaster(EmbeddingRaster):
    """values (bands, rows, cols) float32 and valid (rows, cols) on a Grid; records every window read."""

    def __init__(self, values, valid, grid, band_names=None):
        self.values = np.asarray(values, dtype=np.float32).copy()
        self.valid = np.asarray(valid, dtype=bool).copy()
        assert self.values.shape[1:] == self.valid.shape == (grid.height, grid.width)
        self.values[:, ~self.valid] = NODATA
        self.grid = grid
        bands = self.values.shape[0]
        self.band_names = tuple(band_names) if band_names is not None else tuple(f"A{i:02d}" for i in range(bands))
        self.provenance = Provenance(product="test", product_name="test")
        self.reads = []
        self.closed = False

    def read(self, window):
        self.reads.append(window)
        g = self.grid
        if not (
            window.width > 0
            and window.height > 0
            and window.col >= 0
            and window.row >= 0
            and window.col + window.width <= g.width
            and window.row + window.height <= g.height
        ):
            raise AssertionError(f"read outside the raster or empty: {window} on {g.width} x {g.height}")
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        return EmbeddingBlock(self.values[:, rows, cols].copy(), self.valid[rows, cols].copy())

    def close(self):
        self.closed = True


def make_grid(width, height, res_x=10.0, res_y=None, x0=500000.0, y0=5000000.0, crs=UTM31):
    return Grid(crs, x0, y0, res_x, res_x if res_y is None else res_y, width, height)


def random_raster(width, height, bands=6, seed=0, holes=0.15, box=True, grid=None, **grid_args):
    """Random normal vectors with random nodata pixels and (box=True) a rectangular nodata hole."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(bands, height, width)).astype(np.float32)
    valid = rng.random((height, width)) >= holes
    if box:
        valid[height // 4 : height // 4 + max(1, height // 5), width // 3 : width // 3 + max(1, width // 4)] = False
    grid = grid if grid is not None else make_grid(width, height, **grid_args)
    return MemRaster(values, valid, grid)


def test_memraster_returns_the_stored_window():
    raster = random_raster(13, 9, bands=3, seed=4)
    block = raster.read(Window(2, 3, 5, 4))
    np.testing.assert_array_equal(block.values, raster.values[:, 3:7, 2:7])
    np.testing.assert_array_equal(block.valid, raster.valid[3:7, 2:7])
    assert raster.reads == [Window(2, 3, 5, 4)]
    assert np.all(raster.values[:, ~raster.valid] == NODATA)
    assert (~raster.valid).sum() > 0 and raster.valid.sum() > 0


def test_memraster_refuses_reads_outside():
    raster = random_raster(5, 5)
    with pytest.raises(AssertionError):
        raster.read(Window(3, 0, 3, 1))
    with pytest.raises(AssertionError):
        raster.read(Window(0, 0, 0, 1))
