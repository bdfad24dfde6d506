"""Embedding values at points, reading each block of the raster at most once."""

import numpy as np

from ..loaders.errors import Cancelled
from ..loaders.raster.grid import Window


def pixel_indices(grid, xs, ys):
    """(cols, rows) of the pixels containing points given in the grid's CRS (may fall outside)."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cols = np.floor((xs - grid.x0) / grid.res_x)
        rows = np.floor((grid.y0 - ys) / grid.res_y)
    inside = np.isfinite(cols) & np.isfinite(rows) & (cols >= 0) & (cols < grid.width) & (rows >= 0) & (rows < grid.height)
    cols = np.where(inside, cols, 0).astype(np.int64)
    rows = np.where(inside, rows, 0).astype(np.int64)
    return cols, rows, inside


def sample(raster, xs, ys, block=512, is_cancelled=None):
    """(values (n, bands) float32 with NaN where invalid, valid (n,) bool) at points in the raster's CRS.

    Points are grouped by block; for each block only the bounding window of its points is read.
    """
    cols, rows, inside = pixel_indices(raster.grid, xs, ys)
    count = len(cols)
    values = np.full((count, raster.band_count), np.nan, dtype=np.float32)
    valid = np.zeros(count, dtype=bool)
    todo = np.flatnonzero(inside)
    if todo.size == 0:
        return values, valid
    keys = (rows[todo] // block) * (raster.grid.width // block + 1) + cols[todo] // block
    order = np.argsort(keys, kind="stable")
    todo, keys = todo[order], keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(todo)]):
        if is_cancelled and is_cancelled():
            raise Cancelled()
        members = todo[start:stop]
        c0, c1 = cols[members].min(), cols[members].max() + 1
        r0, r1 = rows[members].min(), rows[members].max() + 1
        data = raster.read(Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0)))
        local_rows, local_cols = rows[members] - r0, cols[members] - c0
        ok = data.valid[local_rows, local_cols]
        values[members[ok]] = data.values[:, local_rows[ok], local_cols[ok]].T
        valid[members] = ok
    return values, valid
