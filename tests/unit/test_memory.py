"""A full-size (8192 x 8192 x 64) south-up tile is mosaicked block by block, never materialised whole."""

import tracemalloc

import numpy as np

from geoembed.loaders.products.aef import BAND_NAMES, dequantize, valid_mask
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.mosaic import TileMosaic

SIZE = 8192
BLOCK = 512
WEST, SOUTH = 300000.0, 5000000.0


class FakeTile:
    """Same interface as AefTile; data synthesised per read: code = (row_from_south + 3 * band) % 255 - 127."""

    crs = "EPSG:32631"
    geotransform = (WEST, 10.0, 0.0, SOUTH, 0.0, 10.0)  # south-up, like AEF
    width = height = SIZE
    bounds = (WEST, SOUTH, WEST + 10.0 * SIZE, SOUTH + 10.0 * SIZE)
    location = "fake"

    def __init__(self):
        self.reads = []

    def read(self, col, row, width, height):
        self.reads.append((int(col), int(row), int(width), int(height)))
        # fail before allocating if a read would be far larger than a block (a whole tile is 4 GiB)
        assert width <= 2 * BLOCK and height <= 2 * BLOCK, f"read of {width} x {height} pixels"
        rows = np.arange(row, row + height, dtype=np.int64)
        bands = np.arange(64, dtype=np.int64)
        codes = ((rows[np.newaxis, :] + 3 * bands[:, np.newaxis]) % 255 - 127).astype(np.int8)
        out = np.empty((64, height, width), dtype=np.int8)
        out[:] = codes[:, :, np.newaxis]
        return dequantize(out), valid_mask(out)

    def close(self):
        pass


def test_whole_tile_mosaic_stays_within_a_few_blocks_of_memory():
    tile = FakeTile()
    grid = Grid(tile.crs, WEST, SOUTH + 10.0 * SIZE, 10.0, 10.0, SIZE, SIZE)
    mosaic = TileMosaic([tile], grid, BAND_NAMES, None)
    checks = {(0, 0), (7, 3), (15, 15), (8, 0)}  # block indices (row, col) whose values are verified
    blocks = 0
    tracemalloc.start()
    try:
        for window, block in mosaic.blocks(BLOCK):
            blocks += 1
            assert block.values.shape == (64, window.height, window.width)
            key = (window.row // BLOCK, window.col // BLOCK)
            if key in checks:
                assert block.valid.all()
                rows_from_south = SIZE - 1 - (window.row + np.arange(window.height))
                codes = (rows_from_south[np.newaxis, :] + 3 * np.arange(64)[:, np.newaxis]) % 255 - 127
                expected = ((codes / 127.5) ** 2) * np.sign(codes)
                np.testing.assert_allclose(block.values[:, :, 0], expected, rtol=1e-6)
                np.testing.assert_array_equal(block.values[:, :, 0], block.values[:, :, -1])
            del block
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blocks == (SIZE // BLOCK) ** 2
    # 64 x 512 x 512 float32 = 64 MiB per block; the whole raster as float32 would be 16 GiB
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert len(tile.reads) == blocks
    assert max(r[2] for r in tile.reads) <= BLOCK + 1 and max(r[3] for r in tile.reads) <= BLOCK + 1
    # every source pixel was read exactly once (aligned grid: windows tile the source)
    assert sum(r[2] * r[3] for r in tile.reads) == SIZE * SIZE  # no time bound: the counts above are the work done
