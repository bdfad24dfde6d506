"""Embedding-aware resampling: nearest copies vectors, aggregate sums them and re-normalises.

Bilinear or cubic interpolation is never offered: it creates vectors off the embedding manifold.
"""

import math

import numpy as np

from ..loaders.errors import GeoEmbedError
from ..loaders.model import NODATA, EmbeddingBlock, EmbeddingRaster
from ..loaders.open import RasterTile
from ..loaders.raster.grid import Window, same_crs, transform_bounds, transformer
from ..loaders.raster.mosaic import TileMosaic
from ..loaders.raster.prefetch import Prefetched
from .aligned_sums import AlignedSums, chunk_target_rows, rows_in_budget

SOURCE_WINDOW = 512  # pixels per side of source read at once by aggregate onto a grid of another CRS or phase
ALIGNED_BLOCK = 128  # target pixels per side of a block when target pixels are whole groups of source pixels
ACCUMULATOR_BYTES = 128 * 2**20  # float64 sums of whole target rows held while streaming the source


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


def require_coarser(raster, grid):
    """Aggregation needs target pixels larger than the source's."""
    if not coarser(raster, grid):
        raise GeoEmbedError(
            "Aggregate resampling needs a target coarser than the source; use MODE=nearest (or auto) for a finer grid."
        )


def aggregate_block_size(raster, grid):
    """Target pixels per side of the blocks AggregateRaster computes and writes at once (nothing is read)."""
    if _aligned_factors(raster.grid, grid) is not None:
        return ALIGNED_BLOCK
    return max(1, int(SOURCE_WINDOW / _scale(raster, grid)))


def _shifted(window, region):
    """A window of the region's own grid as a window of the whole grid."""
    return Window(window.col + region.col, window.row + region.row, window.width, window.height)


class AggregateRaster(EmbeddingRaster):
    """Each target pixel: the L2-normalised sum of the valid source vectors whose centres fall inside it."""

    def __init__(self, raster, grid, region=None):
        """region: the Window of grid that will be read, in whole blocks of block_size (a piece of a run on a Dask
        cluster): only the source under it is read ahead, and each block's values are those of a run over the whole
        grid, bit for bit. By default the whole grid."""
        require_coarser(raster, grid)
        self.source = raster
        self.grid = grid
        self.band_names = raster.band_names
        self.provenance = raster.provenance
        self._factors = _aligned_factors(raster.grid, grid)
        self._stream = None
        self.block_size = aggregate_block_size(raster, grid)
        if self._factors is None:
            return
        whole = Window(0, 0, grid.width, grid.height)
        region = region or whole
        self._region = region
        fy = self._factors[0][1]
        if rows_in_budget(self.band_count, grid.width, ACCUMULATOR_BYTES) >= ALIGNED_BLOCK + chunk_target_rows(fy):
            # Whole target rows fit in memory: stream the source once, top to bottom.
            self._stream = AlignedSums(raster.grid, self.band_count, *self._factors, region)
            windows = self._stream.windows
            if region != whole and _placement_matters(raster):
                raster = _WholeRunReads(raster, AlignedSums(raster.grid, self.band_count, *self._factors, whole))
        else:  # very wide targets: each block on its own
            blocks = grid.window_grid(region).blocks(self.block_size)
            windows = (w for block in blocks for w in self._window_sums(_shifted(block, region)).windows)
        self.source = Prefetched(raster, windows, method="read_linear")  # the reads are known in advance

    def blocks(self, size=None):
        return super().blocks(self.block_size)

    def read(self, window):
        if self._factors is not None:
            return self._read_aligned(window)
        sub = self.grid.window_grid(window)
        src = self.source.grid
        sums = np.zeros((self.band_count, window.height * window.width), dtype=np.float64)
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
        shape = (window.height, window.width)
        return _normalised(sums.reshape((self.band_count,) + shape), counts.reshape(shape))

    def _window_sums(self, window):
        return AlignedSums(self.source.grid, self.band_count, *self._factors, window)

    def _read_aligned(self, window):
        """Target pixels that are exact fx x fy groups of source pixels: sums of whole groups, no index maths."""
        row, col = window.row - self._region.row, window.col - self._region.col  # in the streamed region
        if self._stream is not None and row >= self._stream.first:
            sums, counts = self._stream.rows(row, row + window.height, self.source.read_linear)
            cols = slice(col, col + window.width)
            return _normalised(sums[:, :, cols], counts[:, cols])
        return _normalised(*self._window_sums(window).rows(0, window.height, self.source.read_linear))

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


def _placement_matters(raster):
    """True when the terms read_linear hands over depend on where a window lies: a mosaic gives a window's integer
    terms when one tile covers it, exact float values otherwise (TileMosaic.read_linear), summed in another order."""
    return len(getattr(raster, "tiles", ())) > 1


class _WholeRunReads(EmbeddingRaster):
    """The source of a region read through the windows of a run over the whole grid (whole: its AlignedSums): each
    read_linear window is cut from the whole run's window that holds it, so both sum the same terms."""

    def __init__(self, raster, whole):
        self.raster = raster
        self.whole = whole
        self.grid = raster.grid
        self.band_names = raster.band_names
        self.provenance = raster.provenance

    def read(self, window):
        return self.raster.read(window)

    def read_linear(self, window):
        outer = self.whole.window_holding(window)
        terms, valid, scale = self.raster.read_linear(outer)
        rows = slice(window.row - outer.row, window.row - outer.row + window.height)
        cols = slice(window.col - outer.col, window.col - outer.col + window.width)
        return np.ascontiguousarray(terms[:, rows, cols]), np.ascontiguousarray(valid[rows, cols]), scale

    def close(self):
        self.raster.close()


def _normalised(sums, counts):
    """EmbeddingBlock of sums (bands, rows, cols) divided by their L2 norm; nodata where nothing was summed."""
    norms = np.sqrt(np.einsum("bij,bij->ij", sums, sums))
    ok = (counts > 0) & (norms > 0)
    out = np.full(sums.shape, NODATA, dtype=np.float32)
    np.divide(sums, norms, out=out, where=ok[np.newaxis], casting="unsafe")
    return EmbeddingBlock(out, ok)
