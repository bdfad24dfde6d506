"""Embedding-aware resampling: nearest copies vectors, aggregate sums them and re-normalises.

Bilinear or cubic interpolation is never offered: it creates vectors off the embedding manifold.
"""

import math

import numpy as np

from ..loaders.errors import GeoEmbedError
from ..loaders.grid import Window, same_crs, transform_bounds, transformer
from ..loaders.model import NODATA, EmbeddingBlock, EmbeddingRaster
from ..loaders.mosaic import TileMosaic
from ..loaders.open import RasterTile
from ..loaders.prefetch import Prefetched

SOURCE_WINDOW = 512  # pixels per side of source read at once by aggregate


def nearest(raster, grid):
    """The raster on another grid, each target pixel taking the source pixel under its centre."""
    return TileMosaic([RasterTile(raster)], grid, raster.band_names, raster.provenance)


def coarser(raster, grid):
    """True when target pixels are larger than source pixels (compared in metres at the centre)."""
    return _scale(raster, grid) > 1.0 + 1e-9


def _scale(raster, grid):
    """How many source pixels fit across one target pixel (by area, square-rooted)."""
    src = raster.grid
    cx, cy = (grid.bounds[0] + grid.bounds[2]) / 2, (grid.bounds[1] + grid.bounds[3]) / 2
    if same_crs(src.crs, grid.crs):
        return math.sqrt((grid.res_x * grid.res_y) / (src.res_x * src.res_y))
    # Map one target pixel at the centre into the source CRS and measure it there.
    x0, y0, x1, y1 = transform_bounds(grid.crs, src.crs, (cx, cy, cx + grid.res_x, cy + grid.res_y))
    return math.sqrt(abs((x1 - x0) * (y1 - y0)) / (src.res_x * src.res_y))


def _aligned_factors(src, grid, tolerance=1e-6):
    """((fx, fy), (col, row) of the target origin in source pixels) when each target pixel is exactly a
    whole block of source pixels in the same CRS; else None."""
    if not same_crs(src.crs, grid.crs):
        return None
    values = (grid.res_x / src.res_x, grid.res_y / src.res_y, (grid.x0 - src.x0) / src.res_x, (src.y0 - grid.y0) / src.res_y)
    if any(abs(v - round(v)) > tolerance for v in values) or round(values[0]) < 1 or round(values[1]) < 1:
        return None
    fx, fy, ox, oy = (int(round(v)) for v in values)
    return (fx, fy), (ox, oy)


class AggregateRaster(EmbeddingRaster):
    """Each target pixel: the L2-normalised sum of the valid source vectors whose centres fall inside it."""

    def __init__(self, raster, grid):
        if not coarser(raster, grid):
            raise GeoEmbedError(
                "Aggregate resampling needs a target coarser than the source; use MODE=nearest (or auto) for a finer grid."
            )
        self.source = raster
        self.grid = grid
        self.band_names = raster.band_names
        self.provenance = raster.provenance
        self.block_size = max(1, int(SOURCE_WINDOW / _scale(raster, grid)))
        self._factors = _aligned_factors(raster.grid, grid)
        if self._factors is not None:  # source windows are known in advance: read the next one meanwhile
            self.source = Prefetched(raster, [self._source_window(w) for w in grid.blocks(self.block_size)])

    def blocks(self, size=None):
        return super().blocks(self.block_size)

    def read(self, window):
        if self._factors is not None:
            return self._read_aligned(window)
        sub = self.grid.window_grid(window)
        src = self.source.grid
        bands = self.band_count
        sums = np.zeros((bands, window.height * window.width), dtype=np.float64)
        counts = np.zeros(window.height * window.width, dtype=np.int64)
        left, bottom, right, top = transform_bounds(sub.crs, src.crs, sub.bounds)
        c0 = max(0, math.floor((left - src.x0) / src.res_x) - 1)
        c1 = min(src.width, math.ceil((right - src.x0) / src.res_x) + 1)
        r0 = max(0, math.floor((src.y0 - top) / src.res_y) - 1)
        r1 = min(src.height, math.ceil((src.y0 - bottom) / src.res_y) + 1)
        for row in range(r0, r1, SOURCE_WINDOW):
            for col in range(c0, c1, SOURCE_WINDOW):
                part = Window(col, row, min(SOURCE_WINDOW, c1 - col), min(SOURCE_WINDOW, r1 - row))
                self._accumulate(self.source.read(part), src.window_grid(part), sub, sums, counts)
        norms = np.sqrt((sums * sums).sum(axis=0))
        valid = (counts > 0) & (norms > 0)
        values = np.full((bands, window.height * window.width), NODATA, dtype=np.float32)
        values[:, valid] = (sums[:, valid] / norms[valid]).astype(np.float32)
        return EmbeddingBlock(values.reshape(bands, window.height, window.width), valid.reshape(window.height, window.width))

    def _source_window(self, window):
        """The source pixels under a target window, clipped to the source (None when outside it)."""
        (fx, fy), (ox, oy) = self._factors
        src = self.source.grid
        c0, r0 = ox + window.col * fx, oy + window.row * fy
        cc0, rr0 = max(c0, 0), max(r0, 0)
        cc1, rr1 = min(c0 + window.width * fx, src.width), min(r0 + window.height * fy, src.height)
        return Window(cc0, rr0, cc1 - cc0, rr1 - rr0) if cc0 < cc1 and rr0 < rr1 else None

    def _read_aligned(self, window):
        """Target pixels that are exact fx x fy groups of source pixels: sum by reshaping, no index maths."""
        (fx, fy), (ox, oy) = self._factors
        c0, r0 = ox + window.col * fx, oy + window.row * fy
        width, height = window.width * fx, window.height * fy
        part = self._source_window(window)
        if part == Window(c0, r0, width, height):  # inside the source: sum in place
            block = self.source.read(part)
            values, valid = np.ascontiguousarray(block.values), block.valid
            np.copyto(values, 0.0, where=~valid[np.newaxis])
        else:  # at the source's edge: pad with invalid pixels
            values = np.zeros((self.band_count, height, width), dtype=np.float32)
            valid = np.zeros((height, width), dtype=bool)
            if part is not None:
                block = self.source.read(part)
                rows = slice(part.row - r0, part.row + part.height - r0)
                cols = slice(part.col - c0, part.col + part.width - c0)
                np.copyto(values[:, rows, cols], block.values, where=block.valid[np.newaxis])
                valid[rows, cols] = block.valid
        shape = (self.band_count, window.height, fy, window.width, fx)
        sums = values.reshape(shape).sum(axis=(2, 4))
        counts = valid.reshape(shape[1:]).sum(axis=(1, 3))
        norms = np.sqrt((sums * sums).sum(axis=0))
        ok = (counts > 0) & (norms > 0)
        out = np.full(sums.shape, NODATA, dtype=np.float32)
        np.divide(sums, norms, out=out, where=ok[np.newaxis], casting="unsafe")
        return EmbeddingBlock(out, ok)

    @staticmethod
    def _accumulate(block, part_grid, sub, sums, counts):
        if not block.valid.any():
            return
        xs, ys = part_grid.pixel_centres()
        rows, cols = np.nonzero(block.valid)
        x, y = xs[cols], ys[rows]
        if not same_crs(part_grid.crs, sub.crs):
            x, y = transformer(part_grid.crs, sub.crs).transform(x, y)
        tc = np.floor((x - sub.x0) / sub.res_x).astype(np.int64)
        tr = np.floor((sub.y0 - y) / sub.res_y).astype(np.int64)
        inside = (tc >= 0) & (tc < sub.width) & (tr >= 0) & (tr < sub.height)
        if not inside.any():
            return
        target = tr[inside] * sub.width + tc[inside]
        vectors = block.values[:, rows[inside], cols[inside]]
        size = sub.width * sub.height
        for band in range(vectors.shape[0]):
            sums[band] += np.bincount(target, weights=vectors[band], minlength=size)
        counts += np.bincount(target, minlength=size)

    def close(self):
        self.source.close()
