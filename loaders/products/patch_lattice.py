"""Where patches really are: their footprints in any CRS, the UTM zone they were cut in, and their own lattice.

Patch products are cut on a regular lattice of square chips in some projected CRS (Clay v0: 5120 m chips
starting at a Sentinel-2 tile's corner; Earth Index: 320 m patches). The lattice is not on round multiples of
the patch size, so a raster snapped to such multiples puts every pixel up to half a patch away from its chip.
This module finds the lattice from the footprints themselves: the zone in which the chips are axis-aligned
squares, their size, and the offset of their edges; the grid is then laid on that lattice.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import GeoEmbedError
from ..raster.grid import metres_to_crs_units, transformer
from .geoparquet import wkb_parts, wkb_rings

ALIGNED_M = 0.5
"""A chip is axis-aligned in a zone when no edge leans more than this (metres) across its length."""

SQUARE = ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
"""Corners of the square a point patch stands for, in units of half its side."""

ON_LATTICE_FRACTION = 1e-3
"""A patch is on the lattice when its centre is within this fraction of a cell of a cell centre."""


class Footprints:
    """Every patch's geometry in lon/lat (from WKB), projected to a CRS in one vectorised call."""

    def __init__(self, geometries):
        rings = [_rings(wkb) for wkb in geometries]
        self.count = len(rings)
        self.is_point = np.array([len(r) == 1 and len(r[0]) == 1 for r in rings], dtype=bool)
        flat = [ring for patch in rings for ring in patch]
        self._ring_patch = np.repeat(np.arange(self.count), [len(patch) for patch in rings])
        self._ring_length = np.array([len(ring) for ring in flat], dtype=np.int64)
        coords = np.concatenate(flat) if flat else np.zeros((0, 2))
        self.lon, self.lat = coords[:, 0], coords[:, 1]
        self._point_patch = np.repeat(self._ring_patch, self._ring_length)
        self._point_ring = np.repeat(np.arange(len(flat)), self._ring_length)
        self._cache = {}

    def projected(self, crs):
        """(x, y) of every stored vertex in crs (cached per CRS)."""
        if crs not in self._cache:
            x, y = transformer("EPSG:4326", crs).transform(self.lon, self.lat)
            self._cache[crs] = (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return self._cache[crs]

    def boxes(self, crs):
        """(xmin, ymin, xmax, ymax) arrays of every patch in crs (points: the point, a zero-size box)."""
        x, y = self.projected(crs)
        starts = self.patch_starts()
        return (
            np.minimum.reduceat(x, starts),
            np.minimum.reduceat(y, starts),
            np.maximum.reduceat(x, starts),
            np.maximum.reduceat(y, starts),
        )

    def centres(self, crs):
        """Centre of every patch's box in crs."""
        xmin, ymin, xmax, ymax = self.boxes(crs)
        return (xmin + xmax) / 2, (ymin + ymax) / 2

    def misalignment(self, crs):
        """Per patch, how far (CRS units) its most leaning edge strays from a grid line: 0 for an axis-aligned chip.

        Points and patches without edges get infinity (they say nothing about the zone)."""
        x, y = self.projected(crs)
        same_ring = self._point_ring[1:] == self._point_ring[:-1]
        lean = np.minimum(np.abs(np.diff(x)), np.abs(np.diff(y)))
        out = np.full(self.count, np.inf)
        patches = self._point_patch[1:][same_ring]
        if patches.size:
            worst = np.zeros(self.count)
            np.maximum.at(worst, patches, lean[same_ring])
            has_edges = np.zeros(self.count, dtype=bool)
            has_edges[patches] = True
            out[has_edges] = worst[has_edges]
        return out

    def areas(self, crs):
        """Area of every patch's largest ring in crs (0 for points)."""
        x, y = self.projected(crs)
        same_ring = self._point_ring[1:] == self._point_ring[:-1]
        cross = (x[:-1] * y[1:] - x[1:] * y[:-1])[same_ring]
        ring_area = np.zeros(len(self._ring_length))
        np.add.at(ring_area, self._point_ring[1:][same_ring], cross)
        out = np.zeros(self.count)
        np.maximum.at(out, self._ring_patch, np.abs(ring_area) / 2)
        return out

    def rings(self, crs, point_side):
        """Every patch as a list of (n, 2) rings in crs; points become squares of side point_side (CRS units)."""
        x, y = self.projected(crs)
        coords = np.column_stack([x, y])
        ends = np.cumsum(self._ring_length)
        out = [[] for _ in range(self.count)]
        half = point_side / 2
        for patch, start, end in zip(self._ring_patch, ends - self._ring_length, ends):
            ring = coords[start:end]
            if end - start == 1:
                cx, cy = ring[0]
                ring = np.array([[cx + dx * half, cy + dy * half] for dx, dy in SQUARE])
            out[patch].append(ring)
        return out

    def patch_starts(self):
        """Index of every patch's first vertex."""
        ring_starts = np.cumsum(self._ring_length) - self._ring_length
        first_ring = np.searchsorted(self._ring_patch, np.arange(self.count))
        return ring_starts[first_ring]


def _rings(wkb):
    """A patch's rings; a geometry that is neither areal nor a point (a line) stands for the ring of its vertices."""
    rings = wkb_rings(wkb)
    if rings:
        return rings
    parts = [coords for _, coords in wkb_parts(wkb)]
    if not parts:  # the reader keeps no empty geometry, so this is a broken one
        raise GeoEmbedError("A patch geometry holds no coordinates; the file may be damaged.")
    return [np.concatenate(parts)]


def candidate_zones(footprints):
    """UTM zones the patches could have been cut in: the zones of their centres and the neighbours (MGRS tiles overlap
    the next zone), hemisphere from the median latitude, most common first."""
    starts = footprints.patch_starts()
    lons, lats = footprints.lon[starts], footprints.lat[starts]
    zones, counts = np.unique(np.clip(np.floor((lons + 180.0) / 6.0).astype(int) + 1, 1, 60), return_counts=True)
    base = 32600 if np.median(lats) >= 0 else 32700
    ordered = []
    for zone in zones[np.argsort(-counts, kind="stable")]:
        for candidate in (zone, zone - 1, zone + 1):
            candidate = (candidate - 1) % 60 + 1
            if candidate not in ordered:
                ordered.append(candidate)
    return [f"EPSG:{base + zone}" for zone in ordered[:7]]


@dataclass(frozen=True)
class ZoneChoice:
    crs: str
    native: int  # patches known to be cut in this zone (axis-aligned chips, or points on one lattice)
    total: int


def native_zone(footprints, point_size_m):
    """The UTM zone most patches were cut in, or None when nothing tells (patches aligned in no zone).

    Chips: each is tested in every candidate zone; the zone where it is an axis-aligned square is its own.
    Points: the zone in which the most points sit on one lattice of point_size_m."""
    candidates = candidate_zones(footprints)
    polygons = ~footprints.is_point
    if polygons.any():
        lean = np.stack([footprints.misalignment(crs) for crs in candidates])  # (zones, patches)
        best = np.argmin(lean, axis=0)
        aligned = lean[best, np.arange(footprints.count)] <= ALIGNED_M
        votes = np.bincount(best[aligned & polygons], minlength=len(candidates))
        if votes.max() > 0:
            choice = int(np.argmax(votes))  # ties go to the most common centre zone (candidates are ordered)
            return ZoneChoice(candidates[choice], int(votes[choice]), footprints.count)
        return None
    best, best_count = None, 1
    for crs in candidates:
        cx, cy = footprints.centres(crs)
        count = _largest_lattice(cx, cy, point_size_m, point_size_m)[2]
        if count > best_count:
            best, best_count = crs, count
    return ZoneChoice(best, best_count, footprints.count) if best else None


@dataclass(frozen=True)
class Lattice:
    """Cells of res_x x res_y whose west edges fall on x_edge + k * res_x and north edges on y_edge + k * res_y."""

    crs: str
    res_x: float
    res_y: float
    x_edge: float
    y_edge: float
    on_lattice: np.ndarray  # bool per patch: its centre is a cell centre

    @property
    def members(self):
        return int(self.on_lattice.sum())


def patch_size(footprints, crs):
    """Median (width, height) of the chips in crs, rounded to the millimetre; None for points only.

    Chips that are axis-aligned in crs give their box; chips turned in it (another zone) the side of the square of
    the same area, as the box of a turned square is larger than the square."""
    polygons = ~footprints.is_point
    if not polygons.any():
        return None
    if np.median(footprints.misalignment(crs)[polygons]) <= ALIGNED_M:
        xmin, ymin, xmax, ymax = footprints.boxes(crs)
        width, height = float(np.median((xmax - xmin)[polygons])), float(np.median((ymax - ymin)[polygons]))
    else:
        width = height = float(np.median(np.sqrt(footprints.areas(crs)[polygons])))
    if width <= 0 or height <= 0:
        return None
    return _round_size(width), _round_size(height)


def _round_size(size):
    return round(size, 3) if size >= 1 else float(f"{size:.6g}")


def find_lattice(footprints, crs, res_x, res_y):
    """The lattice of res_x x res_y cells in crs holding the most patch centres (centre = cell centre)."""
    cx, cy = footprints.centres(crs)
    x_edge, y_edge, _ = _largest_lattice(cx, cy, res_x, res_y)
    # Lattices start at a tile corner (whole metres): drop the float noise of corners stored in lon/lat.
    return lattice_through(footprints, crs, res_x, res_y, _round_edge(x_edge, res_x), _round_edge(y_edge, res_y))


def lattice_through(footprints, crs, res_x, res_y, x_edge, y_edge):
    """The lattice of res_x x res_y cells with edges at x_edge + k * res_x, y_edge + k * res_y, and which patches lie on it."""
    cx, cy = footprints.centres(crs)
    x_edge, y_edge = x_edge % res_x, y_edge % res_y
    tolerance_x, tolerance_y = res_x * ON_LATTICE_FRACTION, res_y * ON_LATTICE_FRACTION
    on = (_distance_to_lattice(cx - res_x / 2, x_edge, res_x) <= tolerance_x) & (
        _distance_to_lattice(cy + res_y / 2, y_edge, res_y) <= tolerance_y
    )
    if not footprints.is_point.all():  # a chip of another size is not on the lattice even if its centre is
        xmin, ymin, xmax, ymax = footprints.boxes(crs)
        sized = (np.abs(xmax - xmin - res_x) <= 2 * tolerance_x) & (np.abs(ymax - ymin - res_y) <= 2 * tolerance_y)
        on &= sized | footprints.is_point
    return Lattice(crs, res_x, res_y, x_edge, y_edge, on)


def _round_edge(edge, res):
    return round(edge, 2 if res >= 1 else 10) % res


def _largest_lattice(cx, cy, res_x, res_y):
    """(x_edge, y_edge, count): the cell-edge offsets (mod res) shared by the most centres."""
    if cx.size == 0:
        return 0.0, 0.0, 0
    ox = np.mod(cx - res_x / 2, res_x)
    oy = np.mod(cy + res_y / 2, res_y)
    # Bins of a thousandth of a cell find the commonest offset; its members are then all offsets within one bin of
    # it (offsets of one lattice differ by float noise only, which may straddle a bin edge, and wrap round res).
    bins = 1000
    bx = np.round(ox / res_x * bins).astype(np.int64) % bins
    by = np.round(oy / res_y * bins).astype(np.int64) % bins
    _, inverse, counts = np.unique(bx * bins + by, return_inverse=True, return_counts=True)
    seed = inverse == int(np.argmax(counts))
    x_edge, y_edge = _circular_median(ox[seed], res_x), _circular_median(oy[seed], res_y)
    near_x = _distance_to_lattice(ox, x_edge, res_x) <= res_x / bins
    members = near_x & (_distance_to_lattice(oy, y_edge, res_y) <= res_y / bins)
    return _circular_median(ox[members], res_x), _circular_median(oy[members], res_y), int(members.sum())


def _circular_median(values, period):
    """Median of offsets that may straddle 0 == period."""
    reference = values[0]
    unwrapped = reference + np.mod(values - reference + period / 2, period) - period / 2
    return float(np.mod(np.median(unwrapped), period))


def _distance_to_lattice(edges, lattice_edge, res):
    offset = np.mod(edges - lattice_edge, res)
    return np.minimum(offset, res - offset)


def cell_of(lattice, x, y):
    """(col, row) of the lattice cell (in lattice numbering, north-down) containing each point."""
    return np.floor((x - lattice.x_edge) / lattice.res_x).astype(np.int64), np.floor((lattice.y_edge - y) / lattice.res_y).astype(
        np.int64
    )


def point_side(crs, point_size_m):
    """The side of a point patch's square in crs units."""
    return metres_to_crs_units(crs, point_size_m)


def lattice_description(lattice, grid, total, moved):
    """One log line: which lattice, how many patches lie on it, how many were moved onto it."""
    unit = _unit(lattice.crs)
    text = (
        f"Patch lattice: {_fmt(lattice.res_x)} x {_fmt(lattice.res_y)} {unit} cells of {lattice.crs}, the grid's north-west "
        f"corner at ({_fmt(grid.x0)}, {_fmt(grid.y0)}); {lattice.members} of {total} patch(es) lie on it, one pixel each"
    )
    if moved:
        text += (
            f"; {moved} patch(es) of other lattices (another tile or UTM zone) were moved to the pixel holding their "
            "centre wherever no patch of the lattice or a later one was"
        )
    return text + "."


def _unit(crs):
    from pyproj import CRS

    axes = CRS.from_user_input(crs).axis_info
    name = axes[0].unit_name if axes else "metre"
    return {"metre": "m", "degree": "degree"}.get(name, name)


def _fmt(value):
    return f"{value:.6f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
