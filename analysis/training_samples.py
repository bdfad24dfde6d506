"""Training samples of labelled points and polygons (geoembed:train's classes, geoembed:regress's values)."""

import numpy as np

from .regions import polygon_pixels
from .sampling import sample


def collect_samples(raster, entries, max_pixels_per_polygon, is_cancelled=None):
    """(features (n, bands), targets (n,), xs, ys) of [(target, (kind, geometry))] entries, kind "point" or
    "polygon" as providers.inputs.features_in gives them, in the raster's CRS.

    Points first, each at its pixel (points off a valid pixel are dropped); then each polygon's valid pixels, at most
    max_pixels_per_polygon of them (a sample seeded by the polygon's position), located at the pixel centres."""
    values, targets, xs, ys = [], [], [], []
    points = [(target, geometry) for target, geometry in entries if geometry[0] == "point"]
    if points:
        px = np.array([geometry[1][0] for _, geometry in points])
        py = np.array([geometry[1][1] for _, geometry in points])
        sampled, valid = sample(raster, px, py, is_cancelled=is_cancelled)
        values.append(sampled[valid])
        targets.append(np.array([target for target, _ in points])[valid])
        xs.append(px[valid])
        ys.append(py[valid])
    grid = raster.grid
    for seed, (target, (kind, rings)) in enumerate(entries):
        if kind != "polygon":
            continue
        pixels, cols, rows = polygon_pixels(raster, rings, max_pixels_per_polygon, seed)
        values.append(pixels)
        targets.append(np.full(len(pixels), target))
        xs.append(grid.x0 + (cols + 0.5) * grid.res_x)
        ys.append(grid.y0 - (rows + 0.5) * grid.res_y)
    if not targets:  # no entries
        empty = np.zeros(0)
        return np.zeros((0, raster.band_count)), empty, empty, empty
    return np.concatenate(values), np.concatenate(targets), np.concatenate(xs), np.concatenate(ys)
