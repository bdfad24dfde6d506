"""North-up pixel grids, affine maths and UTM zone choice."""

import math
from dataclasses import dataclass

import numpy as np
from pyproj import CRS, Transformer

from ..errors import GeoEmbedError


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: column/row offset and size."""

    col: int
    row: int
    width: int
    height: int


@dataclass(frozen=True)
class Grid:
    """A north-up grid: pixel (col, row) covers x0 + col*res_x .. and y0 - row*res_y .. (row 0 = north)."""

    crs: str
    x0: float
    y0: float
    res_x: float
    res_y: float
    width: int
    height: int

    @property
    def geotransform(self):
        """GDAL order; negative Y pixel size, i.e. north-up."""
        return (self.x0, self.res_x, 0.0, self.y0, 0.0, -self.res_y)

    @property
    def bounds(self):
        """(xmin, ymin, xmax, ymax)."""
        return (self.x0, self.y0 - self.height * self.res_y, self.x0 + self.width * self.res_x, self.y0)

    def window_grid(self, window):
        """The sub-grid covered by a window."""
        return Grid(
            self.crs,
            self.x0 + window.col * self.res_x,
            self.y0 - window.row * self.res_y,
            self.res_x,
            self.res_y,
            window.width,
            window.height,
        )

    def pixel_centres(self):
        """1-D arrays of the x of every column centre and the y of every row centre."""
        xs = self.x0 + (np.arange(self.width, dtype=np.float64) + 0.5) * self.res_x
        ys = self.y0 - (np.arange(self.height, dtype=np.float64) + 0.5) * self.res_y
        return xs, ys

    def blocks(self, size):
        """Windows of at most size x size pixels covering the grid, row by row from the north."""
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield Window(col, row, min(size, self.width - col), min(size, self.height - row))

    def index_of(self, x, y):
        """(col, row) of the pixel containing a point, possibly outside the grid."""
        return math.floor((x - self.x0) / self.res_x), math.floor((self.y0 - y) / self.res_y)


def grid_from_bounds(crs, bounds, res_x, res_y=None, anchor=(0.0, 0.0)):
    """The smallest grid covering bounds whose pixel edges fall on anchor + k * resolution.

    Anchoring on a source raster's origin keeps a same-CRS output pixel-aligned with it, so
    nearest neighbour copies pixels instead of hitting ties on pixel edges.
    """
    res_y = res_x if res_y is None else res_y
    if not (res_x > 0 and res_y > 0):
        raise GeoEmbedError(f"Resolution must be positive, got {res_x} x {res_y}.")
    ax, ay = anchor
    xmin, ymin, xmax, ymax = bounds
    # Snap outwards, tolerating float noise so that exact multiples stay put.
    eps = 1e-6
    col0 = math.floor((xmin - ax) / res_x + eps)
    col1 = math.ceil((xmax - ax) / res_x - eps)
    row0 = math.floor((ymin - ay) / res_y + eps)
    row1 = math.ceil((ymax - ay) / res_y - eps)
    width, height = max(col1 - col0, 1), max(row1 - row0, 1)
    return Grid(crs, ax + col0 * res_x, ay + row1 * res_y, res_x, res_y, width, height)


def raster_bounds(geotransform, width, height):
    """(xmin, ymin, xmax, ymax) of a raster of any orientation (the box of its four corners)."""
    c, a, b, f, d, e = geotransform
    xs = [c + a * col + b * row for col in (0, width) for row in (0, height)]
    ys = [f + d * col + e * row for col in (0, width) for row in (0, height)]
    return (min(xs), min(ys), max(xs), max(ys))


def boxes_overlap(a, b):
    """True when two (xmin, ymin, xmax, ymax) boxes share some area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def invert_geotransform(gt):
    """Inverse of a GDAL geotransform (any orientation, rotation allowed)."""
    c, a, b, f, d, e = gt
    det = a * e - b * d
    if det == 0:
        raise GeoEmbedError("The raster's geotransform is degenerate (zero pixel size).")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return (-(ia * c + ib * f), ia, ib, -(id_ * c + ie * f), id_, ie)


def utm_crs_for(lon, lat):
    """WGS 84 / UTM zone containing a lon/lat point (plain 6-degree zones, as AEF and Tessera use)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GeoEmbedError(f"Longitude/latitude ({lon}, {lat}) is out of range.")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def same_crs(a, b):
    return a == b or CRS.from_user_input(a) == CRS.from_user_input(b)


_TRANSFORMERS = {}


def transformer(src, dst):
    """A cached, x/y-ordered pyproj transformer."""
    key = (src, dst)
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)
    return _TRANSFORMERS[key]


def transform_bounds(src, dst, bounds, densify=21):
    """Bounds of a rectangle reprojected along its densified edges."""
    if same_crs(src, dst):
        return tuple(bounds)
    xmin, ymin, xmax, ymax = transformer(src, dst).transform_bounds(*bounds, densify_pts=densify)
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
        raise GeoEmbedError(f"The extent {bounds} cannot be expressed in {dst}; use a smaller extent or another CRS.")
    return xmin, ymin, xmax, ymax


def footprint_in(tile, crs):
    """A tile's bounds in another CRS; unbounded when they cannot be expressed there (e.g. a global
    lon/lat grid in UTM), which is safe: the mosaic then tests pixel by pixel."""
    bounds = tile.bounds
    if is_geographic(tile.crs):  # pixel-is-area global grids reach past the poles and the antimeridian
        bounds = (max(bounds[0], -180.0), max(bounds[1], -90.0), min(bounds[2], 180.0), min(bounds[3], 90.0))
    try:
        return transform_bounds(tile.crs, crs, bounds)
    except GeoEmbedError:
        return (-math.inf, -math.inf, math.inf, math.inf)


def is_geographic(crs):
    return CRS.from_user_input(crs).is_geographic


def metres_to_crs_units(crs, metres):
    """A length in metres expressed in the CRS's horizontal unit (degrees use the length of one degree of latitude)."""
    parsed = CRS.from_user_input(crs)
    if parsed.is_geographic:
        return metres / 111_320.0
    factor = parsed.axis_info[0].unit_conversion_factor if parsed.axis_info else 1.0
    return metres / factor


def points_in_rings(x, y, rings):
    """Even-odd point-in-polygon of arrays of points against polygon rings (holes included)."""
    inside = np.zeros(np.shape(x), dtype=bool)
    for ring in rings:
        for ax, ay, bx, by in zip(ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1]):
            if ay == by:
                continue
            crosses = (ay > y) != (by > y)
            inside ^= crosses & (x < ax + (y - ay) * (bx - ax) / (by - ay))
    return inside
