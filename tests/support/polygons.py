"""Brute-force point-in-polygon for the tests' expectations: the non-zero winding number over whole arrays of points
(independent of GDAL's rasteriser and of the even-odd rule the code uses), and the pixel centres of a north-up grid."""

import numpy as np


def winding_inside(x, y, ring):
    """Points (arrays x, y) inside a ring of (x, y) vertices, open or closed (closing it again adds an empty edge)."""
    ring = list(ring) + [ring[0]]
    wn = np.zeros(np.shape(x), dtype=np.int64)
    for (ax, ay), (bx, by) in zip(ring[:-1], ring[1:]):
        cross = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
        wn += (ay <= y) & (by > y) & (cross > 0)
        wn -= (ay > y) & (by <= y) & (cross < 0)
    return wn != 0


def inside_polygons(x, y, polygons):
    """Points inside any polygon [outer ring, hole, ...] (its outer ring minus its holes)."""
    inside = np.zeros(np.shape(x), dtype=bool)
    for outer, *holes in polygons:
        here = winding_inside(x, y, outer)
        for hole in holes:
            here &= ~winding_inside(x, y, hole)
        inside |= here
    return inside


def pixel_centres(x0, y0, res_x, res_y, width, height):
    """(x, y), each (height, width): the map coordinates of the pixel centres of a north-up grid."""
    xs = x0 + (np.arange(width) + 0.5) * res_x
    ys = y0 - (np.arange(height) + 0.5) * res_y
    return np.meshgrid(xs, ys)
