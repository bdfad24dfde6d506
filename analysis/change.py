"""Change between two embedding rasters on one grid: per-pixel cosine distance, a threshold, the changed area.

Two passes with bounded memory. Pass 1 reads both rasters block by block, computes the cosine distance
(1 - cos, 0 = same direction, 2 = opposite) and keeps it in a float32 scratch file beside the output (NaN
on nodata) while building a fine histogram of the distances. The automatic threshold is Otsu's on that
histogram. Pass 2 hands out the distance and the mask block by block from the scratch file, counting the
changed pixels per row (so areas on geographic grids are exact per row).
"""

import os

import numpy as np
from pyproj import CRS

from ..loaders.catalog import lonlat_area_m2
from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.model import EmbeddingBlock
from ..loaders.raster.grid import same_crs, transform_bounds
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK

MAX_DISTANCE = 2.0
HISTOGRAM_BINS = 20_000  # over 0..2: bins of 1e-4
MASK_NODATA = 255  # Byte mask: 1 changed, 0 unchanged, 255 nodata (either raster nodata)
GRID_TOLERANCE = 1e-6  # in pixels


def band_summary(raster):
    names = raster.band_names
    first_last = f"{names[0]}..{names[-1]}" if names else "none"
    return f"{len(names)} bands ({first_last}, {raster.provenance.product})"


def check_same_bands(a, b, first="INPUT", second="INPUT_2"):
    """Refuse two rasters whose bands differ (number, names or order), or of two versions of one product (Tessera v1
    and v2 learned separate feature spaces): their vectors are not comparable."""
    versions = [getattr(getattr(r, "provenance", None), "product_version", "") or "" for r in (a, b)]
    if all(versions) and versions[0] != versions[1]:
        raise GeoEmbedError(
            f"{first} is {a.provenance.product} {versions[0]} but {second} is {b.provenance.product} {versions[1]}: "
            "versions of one product are separate feature spaces; load both with the same VERSION."
        )
    if tuple(a.band_names) != tuple(b.band_names):
        raise GeoEmbedError(
            f"{first} has {band_summary(a)} but {second} has {band_summary(b)}; "
            "compare two rasters of the same product (e.g. two years of AEF)."
        )


def same_grid(a, b):
    """True when two grids are the same pixels (same CRS, origin, pixel size and size)."""
    if (a.width, a.height) != (b.width, b.height) or not same_crs(a.crs, b.crs):
        return False
    tol_x, tol_y = GRID_TOLERANCE * a.res_x, GRID_TOLERANCE * a.res_y
    return (
        abs(a.x0 - b.x0) <= tol_x
        and abs(a.y0 - b.y0) <= tol_y
        and abs(a.res_x - b.res_x) <= tol_x
        and abs(a.res_y - b.res_y) <= tol_y
    )


def overlaps(a, b):
    """True when grid b's footprint, in a's CRS, shares some area with grid a."""
    try:
        other = transform_bounds(b.crs, a.crs, b.bounds)
    except GeoEmbedError:
        return False
    box = a.bounds
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def cosine_distance(values_a, valid_a, values_b, valid_b):
    """(distance (rows, cols) float32 in 0..2, valid) of two (bands, rows, cols) blocks.

    Valid where both pixels are valid and neither vector is all zeros (no direction)."""
    shape = valid_a.shape
    dots, norm_a, norm_b = (np.zeros(shape, dtype=np.float64) for _ in range(3))
    for band_a, band_b in zip(values_a, values_b):  # float64 sums, one band at a time (bounded memory)
        a, b = band_a.astype(np.float64), band_b.astype(np.float64)
        dots += a * b
        norm_a += a * a
        norm_b += b * b
    norms = np.sqrt(norm_a * norm_b)
    valid = valid_a & valid_b & (norms > 0)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)
    distance = np.clip(1.0 - cos, 0.0, MAX_DISTANCE).astype(np.float32)
    return distance, valid


def otsu_threshold(counts, edges):
    """(threshold, separability) of a histogram by Otsu's method: the bin edge maximising the between-class
    variance; separability = between-class / total variance (near 1: two well-separated groups)."""
    counts = np.asarray(counts, dtype=np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    total = counts.sum()
    if total == 0:
        raise GeoEmbedError("No valid pixel to set a threshold on; check that INPUT and INPUT_2 overlap.")
    w0 = np.cumsum(counts)[:-1]  # class 0 = bins 0..k, threshold at edges[k + 1]
    s0 = np.cumsum(counts * centres)[:-1]
    w1 = total - w0
    mean = (counts * centres).sum() / total
    with np.errstate(invalid="ignore", divide="ignore"):
        mu0 = s0 / w0
        mu1 = (mean * total - s0) / w1
        between = np.where((w0 > 0) & (w1 > 0), w0 * w1 * (mu0 - mu1) ** 2 / total**2, -1.0)
    variance = (counts * (centres - mean) ** 2).sum() / total
    best = int(np.argmax(between))
    if between[best] <= 0 or variance <= 0:
        raise GeoEmbedError("All valid pixels have the same distance; give THRESHOLD yourself.")
    return float(edges[best + 1]), float(between[best] / variance)


def pixel_areas_m2(grid):
    """(height,) area of one pixel of each row, in square metres: planar in a projected CRS (its unit converted
    to metres), on the WGS 84 ellipsoid per row in a geographic CRS."""
    parsed = CRS.from_user_input(grid.crs)
    if parsed.is_geographic:
        tops = grid.y0 - np.arange(grid.height) * grid.res_y
        return np.array([lonlat_area_m2(grid.x0, top - grid.res_y, grid.x0 + grid.res_x, top) for top in tops])
    factor = parsed.axis_info[0].unit_conversion_factor if parsed.axis_info else 1.0
    return np.full(grid.height, grid.res_x * grid.res_y * factor * factor)


class ChangeDistances:
    """Pass 1 over two rasters on one grid; then the distance and mask blocks of pass 2 (see the module docstring)."""

    def __init__(self, first, second, scratch_path, block=BLOCK):
        check_same_bands(first, second)
        if not same_grid(first.grid, second.grid):
            raise GeoEmbedError("INPUT_2 must be put on INPUT's grid first (analysis.resample.nearest).")
        self.first, self.second = first, second
        self.grid = first.grid
        self.block = block
        self.scratch_path = scratch_path
        self.edges = np.linspace(0.0, MAX_DISTANCE, HISTOGRAM_BINS + 1)
        self.counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.valid_per_row = np.zeros(self.grid.height, dtype=np.int64)
        self.changed_per_row = np.zeros(self.grid.height, dtype=np.int64)
        self.threshold = None
        self._scratch = None

    def compute(self, progress=None, is_cancelled=None):
        """Pass 1: distances into the scratch file and the histogram. Closes both inputs."""
        grid = self.grid
        windows = list(grid.blocks(self.block))
        self._scratch = np.lib.format.open_memmap(self.scratch_path, mode="w+", dtype=np.float32, shape=(grid.height, grid.width))
        first = Prefetched(self.first, windows)  # both read in the background, in the order of the windows
        second = Prefetched(self.second, windows)
        try:
            for done, window in enumerate(windows, start=1):
                if is_cancelled and is_cancelled():
                    raise Cancelled()
                a, b = first.read(window), second.read(window)
                distance, valid = cosine_distance(a.values, a.valid, b.values, b.valid)
                rows = slice(window.row, window.row + window.height)
                cols = slice(window.col, window.col + window.width)
                self._scratch[rows, cols] = np.where(valid, distance, np.nan)
                self.counts += np.histogram(distance[valid], bins=HISTOGRAM_BINS, range=(0.0, MAX_DISTANCE))[0]
                self.valid_per_row[rows] += valid.sum(axis=1)
                if progress:
                    progress(done / len(windows))
        finally:
            first.close()
            second.close()
        self._scratch.flush()

    @property
    def valid_pixels(self):
        return int(self.valid_per_row.sum())

    def automatic_threshold(self):
        """(Otsu threshold, separability) of the distances of pass 1."""
        return otsu_threshold(self.counts, self.edges)

    def percentile(self, q):
        """Approximate q-th percentile of the valid distances (to the histogram's bin width)."""
        return histogram_percentile(self.counts, self.edges, q)

    def produce(self, window):
        """Pass 2: [distance block, mask block (1 changed: distance > threshold, 0 unchanged)] for write_rasters."""
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        distance = np.array(self._scratch[rows, cols])
        valid = ~np.isnan(distance)
        changed = valid & (distance > self.threshold)
        if window.col == 0:  # each row is counted once: its blocks are written west to east, and this is the first
            self.changed_per_row[rows] = 0
        self.changed_per_row[rows] += changed.sum(axis=1)
        return [EmbeddingBlock(np.where(valid, distance, 0.0), valid), EmbeddingBlock(changed.astype(np.uint8), valid)]

    def summary(self):
        """Changed and valid pixels and areas (m²) and the changed fraction of the valid area."""
        return changed_area(self.changed_per_row, self.valid_per_row, pixel_areas_m2(self.grid))

    def close(self):
        """Drop the scratch file (safe to call more than once)."""
        self._scratch = None
        remove_scratch(self.scratch_path)


def scratch_path_for(output):
    """A hidden scratch file beside an output, removed by ChangeDistances.close()."""
    return scratch_path_beside(output, "distance")


def scratch_path_beside(output, kind):
    """A hidden scratch file of pass 1 beside an output (same disk, so there is room)."""
    folder = os.path.dirname(os.path.abspath(output))
    return os.path.join(folder, f".{os.path.basename(output)}.{os.getpid()}.{kind}.partial.npy")


def remove_scratch(path):
    if os.path.exists(path):
        os.remove(path)


def histogram_percentile(counts, edges, q):
    """Approximate q-th percentile of the values a histogram counts (to its bin width); 0 when it is empty."""
    total = counts.sum()
    if total == 0:
        return 0.0
    index = int(np.searchsorted(np.cumsum(counts), q / 100.0 * total))
    return float(edges[min(index + 1, len(edges) - 1)])


def changed_area(changed_per_row, valid_per_row, areas):
    """Changed and valid pixels and areas (m²), and the changed fraction of the valid area, from per-row pixel
    counts and the area of a pixel of each row (pixel_areas_m2)."""
    changed_m2 = float((changed_per_row * areas).sum())
    valid_m2 = float((valid_per_row * areas).sum())
    return {
        "changed_pixels": int(changed_per_row.sum()),
        "valid_pixels": int(valid_per_row.sum()),
        "changed_m2": changed_m2,
        "valid_m2": valid_m2,
        "changed_fraction": changed_m2 / valid_m2 if valid_m2 > 0 else 0.0,
    }


def area_text(square_metres):
    """'12.50 ha (0.1250 km²)'."""
    return f"{square_metres / 1e4:,.2f} ha ({square_metres / 1e6:,.4f} km²)"
