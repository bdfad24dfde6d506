"""Nearest-neighbour mosaic of source tiles (any CRS, any orientation) onto one north-up grid.

Each output block maps its pixel centres into every overlapping tile, reads (and de-quantises)
only the bounding window of source pixels it needs (GDAL then fetches only the internal blocks
under it) and gathers the nearest source pixel. Orientation is handled by the tile's
geotransform, so south-up tiles need no flipping pass.

A tile provides crs, geotransform, width, height, bounds, close() and
read(col, row, width, height) -> (float32 values (bands, rows, cols), bool valid (rows, cols)).
"""

import numpy as np

from ..model import NODATA, EmbeddingBlock, EmbeddingRaster
from .grid import Window, boxes_overlap, footprint_in, invert_geotransform, same_crs, transformer


class TileMosaic(EmbeddingRaster):
    """An EmbeddingRaster over tiles (see the module docstring for what a tile provides).

    Where tiles overlap, the first tile in `tiles` with a valid pixel wins.
    """

    def __init__(self, tiles, grid, band_names, provenance):
        self.tiles = list(tiles)
        self.grid = grid
        self.band_names = tuple(band_names)
        self.provenance = provenance
        self._footprints = [footprint_in(t, grid.crs) for t in self.tiles]
        self._same_crs = [same_crs(t.crs, grid.crs) for t in self.tiles]
        self.on_close = []  # callables run by close(), e.g. removing temporary files

    def read(self, window):
        sub = self.grid.window_grid(window)
        overlapping = self._overlapping(sub)
        whole = self._whole_from_one_tile(overlapping, sub, "read")
        if whole is not None:  # one tile under the whole block: hand its window over without copying
            return EmbeddingBlock(*whole)
        values = np.full((self.band_count, window.height, window.width), NODATA, dtype=np.float32)
        valid = np.zeros((window.height, window.width), dtype=bool)
        for index in overlapping:
            tile = self.tiles[index]
            if self._separable(index):
                self._fill_separable(tile, sub, values, valid)
            else:
                self._fill_general(tile, sub, values, valid)
            if valid.all():
                break
        return EmbeddingBlock(values, valid)

    def read_linear(self, window):
        sub = self.grid.window_grid(window)
        whole = self._whole_from_one_tile(self._overlapping(sub), sub, "read_linear")
        return whole if whole is not None else super().read_linear(window)

    def _overlapping(self, sub):
        return [i for i, footprint in enumerate(self._footprints) if boxes_overlap(footprint, sub.bounds)]

    def _whole_from_one_tile(self, overlapping, sub, method):
        """tile.<method>'s result for the whole block when one separable tile covers it (and has that method), else None."""
        if len(overlapping) != 1 or not self._separable(overlapping[0]):
            return None
        tile = self.tiles[overlapping[0]]
        reader = getattr(tile, method, None)
        return None if reader is None else self._read_whole(tile, sub, reader)

    def close(self):
        for tile in self.tiles:
            tile.close()
        for callback in self.on_close:
            callback()
        self.on_close = []

    def _separable(self, index):
        gt = self.tiles[index].geotransform
        return self._same_crs[index] and gt[2] == 0 and gt[4] == 0

    @staticmethod
    def _source_indices(tile, sub):
        """Source column of every target column and source row of every target row (same CRS, no rotation)."""
        c, a, _, f, _, e = tile.geotransform
        xs, ys = sub.pixel_centres()
        return np.floor((xs - c) / a).astype(np.int64), np.floor((ys - f) / e).astype(np.int64)

    @classmethod
    def _read_whole(cls, tile, sub, read):
        """read(col, row, width, height)'s (values, valid, ...) for the whole block from one tile (a view, oriented
        like the grid), or None when the block reaches past the tile."""
        cols, rows = cls._source_indices(tile, sub)
        if cols.min() < 0 or cols.max() >= tile.width or rows.min() < 0 or rows.max() >= tile.height:
            return None
        c0, r0 = cols.min(), rows.min()
        values, valid, *rest = read(c0, r0, cols.max() - c0 + 1, rows.max() - r0 + 1)
        row_index, col_index = _as_slice(rows - r0), _as_slice(cols - c0)
        return (values[:, row_index][:, :, col_index], valid[row_index][:, col_index], *rest)

    @classmethod
    def _fill_separable(cls, tile, sub, values, valid):
        """Same CRS, no rotation: source column depends on x only and row on y only."""
        cols, rows = cls._source_indices(tile, sub)
        col_in = np.flatnonzero((cols >= 0) & (cols < tile.width))
        row_in = np.flatnonzero((rows >= 0) & (rows < tile.height))
        if col_in.size == 0 or row_in.size == 0:
            return
        # The mapping is monotonic, so the target pixels inside the tile form one rectangle.
        tc0, tc1, tr0, tr1 = col_in[0], col_in[-1] + 1, row_in[0], row_in[-1] + 1
        src_cols, src_rows = cols[tc0:tc1], rows[tr0:tr1]
        c0, r0 = src_cols.min(), src_rows.min()
        window_values, window_valid = tile.read(c0, r0, src_cols.max() - c0 + 1, src_rows.max() - r0 + 1)
        row_index, col_index = _as_slice(src_rows - r0), _as_slice(src_cols - c0)
        decoded = window_values[:, row_index][:, :, col_index]
        ok = window_valid[row_index][:, col_index]
        target_valid = valid[tr0:tr1, tc0:tc1]
        take = ok & ~target_valid
        target = values[:, tr0:tr1, tc0:tc1]
        np.copyto(target, decoded, where=take[np.newaxis])  # far faster than boolean fancy indexing
        target_valid |= take

    def _fill_general(self, tile, sub, values, valid):
        """Any CRS: reproject every pixel centre into the tile and take the pixel containing it."""
        xs, ys = sub.pixel_centres()
        gx, gy = np.meshgrid(xs, ys)
        if not same_crs(tile.crs, self.grid.crs):
            gx, gy = transformer(self.grid.crs, tile.crs).transform(gx, gy)
        ic, ia, ib, if_, id_, ie = invert_geotransform(tile.geotransform)
        with np.errstate(invalid="ignore"):
            colf = ic + ia * gx + ib * gy
            rowf = if_ + id_ * gx + ie * gy
            inside = (colf >= 0) & (colf < tile.width) & (rowf >= 0) & (rowf < tile.height) & ~valid
        if not inside.any():
            return
        cols = np.floor(colf[inside]).astype(np.int64)
        rows = np.floor(rowf[inside]).astype(np.int64)
        c0, r0 = cols.min(), rows.min()
        window_values, window_valid = tile.read(c0, r0, cols.max() - c0 + 1, rows.max() - r0 + 1)
        decoded, ok = window_values[:, rows - r0, cols - c0], window_valid[rows - r0, cols - c0]
        target_rows, target_cols = np.nonzero(inside)
        target_rows, target_cols = target_rows[ok], target_cols[ok]
        values[:, target_rows, target_cols] = decoded[:, ok]
        valid[target_rows, target_cols] = True


class RasterTile:
    """An EmbeddingRaster seen as one mosaic tile, so that a TileMosaic can put it onto another grid."""

    def __init__(self, raster):
        self.raster = raster
        self.crs, self.geotransform = raster.grid.crs, raster.grid.geotransform
        self.width, self.height, self.bounds = raster.grid.width, raster.grid.height, raster.grid.bounds

    def read(self, col, row, width, height):
        block = self.raster.read(Window(int(col), int(row), int(width), int(height)))
        return block.values, block.valid

    def close(self):
        self.raster.close()


def onto_grid(raster, grid):
    """The raster itself when it is on grid, else its nearest-neighbour resampling onto grid (nodata outside it)."""
    if raster.grid == grid:
        return raster
    return TileMosaic([RasterTile(raster)], grid, raster.band_names, raster.provenance)


def _as_slice(indices):
    """A slice (a view, no copy) when indices step by +1 or -1 (aligned grids, also south-up), else the indices."""
    if len(indices) > 1:
        step = indices[1] - indices[0]
        if step in (1, -1) and np.all(np.diff(indices) == step):
            stop = indices[-1] + step
            return slice(indices[0], None if stop < 0 else stop, step)
    elif len(indices) == 1:
        return slice(indices[0], indices[0] + 1)
    return indices
