"""Putting patches on a grid: one pixel per patch on the patches' own lattice, or the patch under each pixel.

Two rules, chosen by what the patches are:
- on their lattice (the output pixel is the patch size and most patches sit on one lattice in the output CRS):
  the grid is laid on that lattice and each patch is the one pixel whose centre is its centre; patches of other
  lattices go to the pixel holding their centre, and pixels still empty take a patch that contains their centre;
- otherwise (another pixel size, a CRS the patches were not cut in, overlapping fragments such as Major TOM's):
  each pixel takes the patch containing its centre.
Where several patches compete for a pixel the latest date wins, then the patch whose centre is nearest.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import GeoEmbedError
from ..raster.grid import Grid, grid_from_bounds, points_in_rings
from ..raster.planning import MAX_PIXELS
from .patch_lattice import cell_of, find_lattice, lattice_through, patch_size, point_side

SNAPPED = "lattice"
CONTAINED = "containment"


@dataclass
class Placement:
    grid: Grid
    index: np.ndarray  # int32 (rows, cols): the patch shown by each pixel, -1 where none
    rule: str  # SNAPPED or CONTAINED
    lattice: object  # the Lattice found (also under CONTAINED, where it anchors the grid), or None
    moved: int = 0  # patches of other lattices moved onto it (SNAPPED)


def place(footprints, ranks, crs, resolution, bounds, point_size_m):
    """Placement of every patch on a grid in crs.

    ranks: per patch, larger = later date. resolution: the user's pixel size (crs units) or None for the patch size.
    bounds: the extent in crs, or None for all patches."""
    size = patch_size(footprints, crs)
    if size is None:  # points only: their squares are the product's patch size
        side = point_side(crs, point_size_m)
        size = (side, side)
    lattice = find_lattice(footprints, crs, *size)
    native_size = resolution is None or _same_size((resolution, resolution), size)
    if native_size and lattice.members * 2 >= footprints.count:
        return _snap(footprints, ranks, lattice, bounds, point_size_m)
    # Another pixel size: still anchored on the patches' edges, so pixels that fit in a patch never straddle two.
    anchor = _a_patch_corner(footprints, lattice) if lattice.members else (0.0, 0.0)
    res_x, res_y = (resolution, resolution) if resolution else size
    return _contain(footprints, ranks, crs, res_x, res_y, anchor, bounds, point_size_m, lattice)


def _a_patch_corner(footprints, lattice):
    """The north-west corner of the north-west patch on the lattice (a real edge, not the lattice's offset)."""
    cx, cy = footprints.centres(lattice.crs)
    cols, rows = cell_of(lattice, cx[lattice.on_lattice], cy[lattice.on_lattice])
    return lattice.x_edge + cols.min() * lattice.res_x, lattice.y_edge - rows.min() * lattice.res_y


def _same_size(a, b):
    return all(abs(x - y) <= 1e-6 * max(abs(y), 1e-12) + 1e-9 for x, y in zip(a, b))


def _snap(footprints, ranks, lattice, bounds, point_size_m):
    cx, cy = footprints.centres(lattice.crs)
    cols, rows = cell_of(lattice, cx, cy)
    c0, c1, r0, r1 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
    if bounds is not None:  # no cell beyond the extent, nor beyond the patches
        e0, e1, f0, f1 = _cells_meeting(lattice, bounds)
        c0, c1, r0, r1 = max(c0, e0), min(c1, e1), max(r0, f0), min(r1, f1)
        if c0 >= c1 or r0 >= r1:
            raise GeoEmbedError("No patch lies in the extent; check EXTENT and its CRS.")
    x0, y0 = lattice.x_edge + c0 * lattice.res_x, lattice.y_edge - r0 * lattice.res_y
    grid = _checked(Grid(lattice.crs, x0, y0, lattice.res_x, lattice.res_y, int(c1 - c0), int(r1 - r0)))
    return _snapped_on(footprints, ranks, lattice, grid, point_size_m)


def snap_on_grid(footprints, ranks, grid, point_size_m):
    """The lattice placement on a given grid (for patches read again over a grid already chosen)."""
    lattice = lattice_through(footprints, grid.crs, grid.res_x, grid.res_y, grid.x0, grid.y0)
    return _snapped_on(footprints, ranks, lattice, grid, point_size_m)


def _snapped_on(footprints, ranks, lattice, grid, point_size_m):
    cx, cy = footprints.centres(lattice.crs)
    cols = np.floor((cx - grid.x0) / grid.res_x).astype(np.int64)
    rows = np.floor((grid.y0 - cy) / grid.res_y).astype(np.int64)
    inside = (cols >= 0) & (cols < grid.width) & (rows >= 0) & (rows < grid.height)
    xs, ys = grid.pixel_centres()
    distance = np.full(footprints.count, np.inf)
    distance[inside] = np.hypot(cx[inside] - xs[cols[inside]], cy[inside] - ys[rows[inside]])
    # First come, first served in the order latest date, then nearest centre: that patch keeps the pixel.
    order = np.lexsort((distance, -ranks))
    order = order[inside[order]]
    flat = rows[order] * grid.width + cols[order]
    _, first = np.unique(flat, return_index=True)
    index = np.full(grid.height * grid.width, -1, dtype=np.int32)
    index[flat[first]] = order[first]
    index = index.reshape(grid.height, grid.width)
    moved = int((~lattice.on_lattice).sum())
    if moved:  # a moved patch may leave a pixel inside it empty: fill it with the patch that contains its centre
        empty = index < 0
        if empty.any():
            contained = _containing(footprints, ranks, grid, point_size_m)
            index[empty] = contained[empty]
    return Placement(grid, index, SNAPPED, lattice, moved)


def _contain(footprints, ranks, crs, res_x, res_y, anchor, bounds, point_size_m, lattice):
    rings = footprints.rings(crs, point_side(crs, point_size_m))
    boxes = [_box(patch) for patch in rings if patch]
    covered = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    if bounds is not None:
        covered = (max(covered[0], bounds[0]), max(covered[1], bounds[1]), min(covered[2], bounds[2]), min(covered[3], bounds[3]))
        if covered[0] >= covered[2] or covered[1] >= covered[3]:
            raise GeoEmbedError("No patch lies in the extent; check EXTENT and its CRS.")
    grid = _checked(grid_from_bounds(crs, covered, res_x, res_y, anchor=anchor))
    index = _containing(footprints, ranks, grid, point_size_m, rings)
    return Placement(grid, index, CONTAINED, lattice if lattice.members else None)


def contain_on_grid(footprints, ranks, grid, point_size_m):
    """The containment placement on a given grid (for patches read again over a grid already chosen)."""
    return Placement(grid, _containing(footprints, ranks, grid, point_size_m), CONTAINED, None)


def _containing(footprints, ranks, grid, point_size_m, rings=None):
    """int32 (rows, cols): for each pixel, the patch containing its centre (latest date, then nearest centre), or -1."""
    rings = rings if rings is not None else footprints.rings(grid.crs, point_side(grid.crs, point_size_m))
    best = np.full((grid.height, grid.width), -1, dtype=np.int32)
    best_rank = np.full(best.shape, np.iinfo(np.int64).min, dtype=np.int64)
    best_distance = np.full(best.shape, np.inf)
    xs_all, ys_all = grid.pixel_centres()
    for index, patch in enumerate(rings):
        if not patch:
            continue
        xmin, ymin, xmax, ymax = _box(patch)
        c0 = max(0, math.floor((xmin - grid.x0) / grid.res_x - 0.5))
        c1 = min(grid.width, math.ceil((xmax - grid.x0) / grid.res_x + 0.5))
        r0 = max(0, math.floor((grid.y0 - ymax) / grid.res_y - 0.5))
        r1 = min(grid.height, math.ceil((grid.y0 - ymin) / grid.res_y + 0.5))
        if c0 >= c1 or r0 >= r1:
            continue
        gx, gy = np.meshgrid(xs_all[c0:c1], ys_all[r0:r1])
        inside = points_in_rings(gx, gy, patch)
        if not inside.any():
            continue
        distance = np.hypot(gx - (xmin + xmax) / 2, gy - (ymin + ymax) / 2)
        rank = ranks[index]
        here = (slice(r0, r1), slice(c0, c1))
        better = inside & ((rank > best_rank[here]) | ((rank == best_rank[here]) & (distance < best_distance[here])))
        best[here][better] = index
        best_rank[here][better] = rank
        best_distance[here][better] = distance[better]
    return best


def _cells_meeting(lattice, bounds):
    """(col0, col1, row0, row1), end-exclusive, of the lattice cells sharing area with bounds."""
    eps = 1e-6  # an extent edge on a cell edge does not take the next cell
    xmin, ymin, xmax, ymax = bounds
    col0 = math.floor((xmin - lattice.x_edge) / lattice.res_x + eps)
    col1 = math.ceil((xmax - lattice.x_edge) / lattice.res_x - eps)
    row0 = math.floor((lattice.y_edge - ymax) / lattice.res_y + eps)
    row1 = math.ceil((lattice.y_edge - ymin) / lattice.res_y - eps)
    return col0, col1, row0, row1


def _box(rings):
    return (
        min(float(r[:, 0].min()) for r in rings),
        min(float(r[:, 1].min()) for r in rings),
        max(float(r[:, 0].max()) for r in rings),
        max(float(r[:, 1].max()) for r in rings),
    )


def _checked(grid):
    if grid.width * grid.height > MAX_PIXELS:
        raise GeoEmbedError(
            f"The output would be {grid.width} x {grid.height} pixels; use a smaller EXTENT or a coarser RESOLUTION."
        )
    return grid


def date_ranks(dates):
    """Per patch, the rank of its date among the dates present (later = larger); patches without a date rank lowest."""
    known = sorted({d for d in dates if d is not None})
    order = {d: i for i, d in enumerate(known)}
    return np.array([order[d] if d is not None else -1 for d in dates], dtype=np.int64)
