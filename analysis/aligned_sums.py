"""Sums of the source pixels under each target pixel, when every target pixel is exactly fx x fy source pixels.

The source is read once, in windows of CHUNK_ROWS x CHUNK_COLS aligned to its own grid: GeoTIFF internal
blocks are powers of two up to 1024, so a row of such windows decodes each internal block once, with the
block kept in GDAL's cache while the windows beside it are read. Groups cut by a window edge are completed
by the next window (sums are additive). Values come through read_linear: quantised products hand over
integer terms, summed exactly in integers and scaled once per target pixel.
"""

import math

import numpy as np

from ..loaders.raster.grid import Window

CHUNK_ROWS = 1024  # whole internal block rows: a block row is never decoded twice
CHUNK_COLS = 256  # narrow enough to keep one read small, wide enough for few Python steps


def group_sums(x, axis, phase, factor, dtype=None):
    """Sums along axis over consecutive runs of `factor` elements, x starting `phase` elements into its first run."""
    n = x.shape[axis]
    head = min(n, (factor - phase) % factor)
    body = (n - head) // factor * factor

    def part(start, stop):
        return x[(slice(None),) * axis + (slice(start, stop),)]

    pieces = []
    if head:
        pieces.append(part(0, head).sum(axis=axis, keepdims=True, dtype=dtype))
    if body:
        runs = x.shape[:axis] + (body // factor, factor) + x.shape[axis + 1 :]
        pieces.append(part(head, head + body).reshape(runs).sum(axis=axis + 1, dtype=dtype))
    if head + body < n:
        pieces.append(part(head + body, n).sum(axis=axis, keepdims=True, dtype=dtype))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=axis)


def _sum_dtype(terms, area):
    """An integer type the sum of `area` terms cannot overflow (float terms keep their own type)."""
    if not np.issubdtype(terms.dtype, np.integer):
        return None
    return np.int32 if np.iinfo(terms.dtype).max * area < 2**31 else np.int64


class AlignedSums:
    """Float64 sums and valid-pixel counts per target pixel of `target` (a Window of the target grid), all columns
    at once, handed out row band by row band. Rows must be asked for from north to south."""

    def __init__(self, source_grid, bands, factors, origin, target):
        (self.fx, self.fy), (self.ox, self.oy) = factors, origin
        self.bands, self.target = bands, target
        self.c0 = max(0, self.ox + target.col * self.fx)
        self.c1 = min(source_grid.width, self.ox + (target.col + target.width) * self.fx)
        self.r0 = max(0, self.oy + target.row * self.fy)
        self.r1 = min(source_grid.height, self.oy + (target.row + target.height) * self.fy)
        self._row_chunks = iter(self._chunks(self.r0, self.r1, CHUNK_ROWS))
        self.windows = [
            Window(ca, ra, cb - ca, rb - ra)
            for ra, rb in self._chunks(self.r0, self.r1, CHUNK_ROWS)
            for ca, cb in self._chunks(self.c0, self.c1, CHUNK_COLS)
        ]
        self.first = 0  # target row (relative to target) held at index 0 of the sums
        self.sums = np.zeros((bands, 0, target.width))
        self.counts = np.zeros((0, target.width), dtype=np.int64)
        self.done = 0 if self.r0 < self.r1 else target.height  # rows before this one are complete

    def window_holding(self, window):
        """The one of self.windows that holds window (a part of what a sum over a smaller target reads)."""
        for outer in self.windows:
            across = outer.col <= window.col and window.col + window.width <= outer.col + outer.width
            if across and outer.row <= window.row and window.row + window.height <= outer.row + outer.height:
                return outer
        raise ValueError(f"no read window holds {window}")

    @staticmethod
    def _chunks(start, stop, size):
        """[a, b) runs covering start..stop, cut where the source grid's multiples of size fall."""
        edges = [start] + list(range((start // size + 1) * size, stop, size)) + [stop]
        return [(a, b) for a, b in zip(edges, edges[1:]) if a < b]

    def rows(self, start, stop, read_linear):
        """(sums (bands, stop - start, width), counts (stop - start, width)) for target rows start..stop."""
        if start < self.first:
            raise ValueError("AlignedSums hands rows out from north to south only")
        while self.done < stop:
            self._add_next_row_chunk(read_linear)
        self._cover(stop)
        drop = start - self.first
        if drop:
            self.sums, self.counts, self.first = self.sums[:, drop:], self.counts[drop:], start
        return self.sums[:, : stop - start], self.counts[: stop - start]

    def _cover(self, stop):
        """Grow the held rows with zeros up to target row stop."""
        missing = stop - self.first - self.sums.shape[1]
        if missing > 0:
            self.sums = np.concatenate([self.sums, np.zeros((self.bands, missing, self.target.width))], axis=1)
            self.counts = np.concatenate([self.counts, np.zeros((missing, self.target.width), dtype=np.int64)])

    def _add_next_row_chunk(self, read_linear):
        chunk = next(self._row_chunks, None)
        if chunk is None:
            self.done = self.target.height
            return
        ra, rb = chunk
        top = (ra - self.oy) // self.fy - self.target.row  # target rows touched, relative to target
        bottom = (rb - 1 - self.oy) // self.fy - self.target.row + 1
        self._cover(bottom)
        rows = slice(top - self.first, bottom - self.first)
        for ca, cb in self._chunks(self.c0, self.c1, CHUNK_COLS):
            terms, valid, scale = read_linear(Window(ca, ra, cb - ca, rb - ra))
            row_phase, col_phase = (ra - self.oy) % self.fy, (ca - self.ox) % self.fx
            dtype = _sum_dtype(terms, self.fx * self.fy)
            sums = group_sums(group_sums(terms, 1, row_phase, self.fy, dtype), 2, col_phase, self.fx)
            counts = group_sums(group_sums(valid, 0, row_phase, self.fy, np.int32), 1, col_phase, self.fx)
            left = (ca - self.ox) // self.fx - self.target.col
            cols = slice(left, left + sums.shape[2])
            self.sums[:, rows, cols] += sums * scale if scale != 1 else sums
            self.counts[rows, cols] += counts
        complete = (rb - self.oy) % self.fy == 0 or rb == self.r1  # is the last touched row finished?
        self.done = bottom if complete else bottom - 1


def rows_in_budget(bands, width, budget_bytes):
    """How many float64 target rows of this width fit in budget_bytes."""
    return budget_bytes // max(1, bands * width * 8)


def chunk_target_rows(fy):
    """Target rows one source row chunk touches, at most."""
    return math.ceil(CHUNK_ROWS / fy) + 1
