"""Embedding vectors under vector features: points sample one pixel, polygons every pixel centre inside."""

import math

import numpy as np

from ..loaders.raster.grid import Window, points_in_rings
from .sampling import sample


def polygon_pixels(raster, rings, max_pixels=None, seed=0):
    """(values (n, bands), cols, rows) of the valid pixels whose centres fall inside the polygon rings.

    Rings are (k, 2) arrays in the raster's CRS. max_pixels caps n with a deterministic random subset.
    """
    grid = raster.grid
    xmin = min(r[:, 0].min() for r in rings)
    xmax = max(r[:, 0].max() for r in rings)
    ymin = min(r[:, 1].min() for r in rings)
    ymax = max(r[:, 1].max() for r in rings)
    c0 = max(0, math.floor((xmin - grid.x0) / grid.res_x))
    c1 = min(grid.width, math.ceil((xmax - grid.x0) / grid.res_x))
    r0 = max(0, math.floor((grid.y0 - ymax) / grid.res_y))
    r1 = min(grid.height, math.ceil((grid.y0 - ymin) / grid.res_y))
    empty = np.zeros((0, raster.band_count), dtype=np.float32), np.zeros(0, int), np.zeros(0, int)
    if c0 >= c1 or r0 >= r1:
        return empty
    values, cols, rows = [], [], []
    for window in _windows(c0, r0, c1, r1, 512):
        sub = grid.window_grid(window)
        xs, ys = sub.pixel_centres()
        gx, gy = np.meshgrid(xs, ys)
        inside = points_in_rings(gx, gy, rings)
        if not inside.any():
            continue
        block = raster.read(window)
        take = inside & block.valid
        local_rows, local_cols = np.nonzero(take)
        values.append(block.values[:, local_rows, local_cols].T)
        cols.append(local_cols + window.col)
        rows.append(local_rows + window.row)
    if not values:
        return empty
    values, cols, rows = np.concatenate(values), np.concatenate(cols), np.concatenate(rows)
    if max_pixels is not None and len(values) > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(len(values), max_pixels, replace=False))
        values, cols, rows = values[keep], cols[keep], rows[keep]
    return values, cols, rows


def _windows(c0, r0, c1, r1, size):
    for row in range(r0, r1, size):
        for col in range(c0, c1, size):
            yield Window(col, row, min(size, c1 - col), min(size, r1 - row))


def feature_vectors(raster, features):
    """One vector per feature: a point's pixel, or a polygon's mean pixel; None where nothing valid lies under it.

    features: list of ("point", (x, y)) or ("polygon", [rings]) in the raster's CRS.
    """
    out = [None] * len(features)
    points = [(i, geometry) for i, (kind, geometry) in enumerate(features) if kind == "point"]
    if points:
        xs = np.array([p[1][0] for p in points])
        ys = np.array([p[1][1] for p in points])
        values, valid = sample(raster, xs, ys)
        for (index, _), vector, ok in zip(points, values, valid):
            if ok:
                out[index] = vector
    for index, (kind, rings) in enumerate(features):
        if kind == "polygon":
            values, _, _ = polygon_pixels(raster, rings)
            if len(values):
                out[index] = values.mean(axis=0)
    return out


def unit(vectors, axis=-1):
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float64), where=norms > 0)
