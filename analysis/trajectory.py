"""Change over N years of one product, per pixel: consecutive cosine distances, the largest break, anomalies.

The years' rasters are on one grid (the provider puts them there) and ordered by year. Two passes, bounded memory:

Pass 1 reads the same block of every year at once (all years of one block fit in memory: the block side shrinks
with the number of years and bands, see block_side) and computes, per pixel,
  - the cosine distance (1 - cos) between each pair of consecutive years, NaN where either year is nodata;
  - with anomalies: the cosine distance between each year's vector and the pixel's own multi-year mean direction
    (the L2-normalised mean of the unit vectors of its valid years; nodata where fewer than two years are valid).
Holding one block of every year lets the mean and the anomalies come from the same read: no second read of the
embeddings. Both go to a float32 scratch file beside the output, and a fine histogram of each pair's distances
gives the automatic threshold (Otsu on all consecutive distances, as geoembed:change does).
Pass 2 hands out the output blocks from the scratch file (distances, the break year and size, anomalies),
counting changed pixels per pair and row (exact areas on geographic grids).
"""

import math

import numpy as np

from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.model import NODATA, EmbeddingBlock
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK
from .change import (
    HISTOGRAM_BINS,
    MAX_DISTANCE,
    changed_area,
    check_same_bands,
    histogram_percentile,
    otsu_threshold,
    pixel_areas_m2,
    remove_scratch,
    same_grid,
    scratch_path_beside,
)

BREAK_NODATA = 0  # UInt16 break year: 0 where no pair is valid (years and input positions are >= 1)
BLOCK_BUDGET = 192 * 2**20  # bytes of float32 values of one block of every year (the prefetched next one doubles it)
MIN_BLOCK = 64
ARROW = "\u2192"


def block_side(years, bands, budget=BLOCK_BUDGET):
    """Pixels per side of a block such that one block of every year fits the budget (at most BLOCK, at least 64)."""
    side = int(math.sqrt(budget / (4.0 * max(1, years * bands))))
    return max(MIN_BLOCK, min(BLOCK, side // MIN_BLOCK * MIN_BLOCK))


def year_order(years, names):
    """(order, labels, by_year) of rasters with these provenance years (None: unknown).

    Every year known: order sorts them by year, labels are the years; two rasters of one year are refused.
    A year unknown: the order given, labels are the positions 1..N (by_year False)."""
    if any(year is None for year in years):
        return list(range(len(years))), list(range(1, len(years) + 1)), False
    seen = {}
    for name, year in zip(names, years):
        if year in seen:
            raise GeoEmbedError(f"INPUT has two rasters of {year} ({seen[year]} and {name}); give one raster per year.")
        seen[year] = name
    order = sorted(range(len(years)), key=lambda i: years[i])
    return order, [int(years[i]) for i in order], True


def pair_names(labels):
    """'2019→2020' for each pair of consecutive labels."""
    return [f"{a}{ARROW}{b}" for a, b in zip(labels[:-1], labels[1:])]


def unit_vectors_valid(block):
    """(rows, cols) float64 norms and validity (valid and not an all-zero vector) of an EmbeddingBlock."""
    norms = np.zeros(block.valid.shape, dtype=np.float64)
    for band in block.values:
        b = band.astype(np.float64)
        norms += b * b
    norms = np.sqrt(norms)
    return norms, block.valid & (norms > 0)


def consecutive_distances(blocks):
    """(pairs, rows, cols) float32 cosine distance between consecutive blocks, NaN where either is invalid."""
    norms = [unit_vectors_valid(block) for block in blocks]
    shape = blocks[0].valid.shape
    out = np.empty((len(blocks) - 1, *shape), dtype=np.float32)
    for index, (a, b) in enumerate(zip(blocks[:-1], blocks[1:])):
        dots = np.zeros(shape, dtype=np.float64)
        for band_a, band_b in zip(a.values, b.values):  # one band at a time: float64 sums, bounded memory
            dots += band_a.astype(np.float64) * band_b.astype(np.float64)
        (norm_a, valid_a), (norm_b, valid_b) = norms[index], norms[index + 1]
        valid = valid_a & valid_b
        cos = dots / np.where(valid, norm_a * norm_b, 1.0)
        out[index] = np.where(valid, np.clip(1.0 - cos, 0.0, MAX_DISTANCE), np.nan)
    return out


def anomalies(blocks):
    """(years, rows, cols) float32 cosine distance of each year's vector to the pixel's mean direction (the
    normalised mean of its valid years' unit vectors); NaN where the year is invalid or fewer than 2 years are."""
    norms = [unit_vectors_valid(block) for block in blocks]
    shape = blocks[0].valid.shape
    count = sum(valid.astype(np.int64) for _, valid in norms)
    dots = [np.zeros(shape, dtype=np.float64) for _ in blocks]
    mean_norm = np.zeros(shape, dtype=np.float64)
    scales = [np.where(valid, 1.0 / np.where(valid, norm, 1.0), 0.0) for norm, valid in norms]
    for band in range(blocks[0].values.shape[0]):  # the mean direction, one band at a time
        units = [block.values[band].astype(np.float64) * scale for block, scale in zip(blocks, scales)]
        total = sum(units)
        mean_norm += total * total
        for dot, unit in zip(dots, units):
            dot += unit * total
    mean_norm = np.sqrt(mean_norm)
    out = np.empty((len(blocks), *shape), dtype=np.float32)
    for index, (_, valid) in enumerate(norms):
        ok = valid & (count >= 2) & (mean_norm > 0)
        cos = dots[index] / np.where(ok, mean_norm, 1.0)
        out[index] = np.where(ok, np.clip(1.0 - cos, 0.0, MAX_DISTANCE), np.nan)
    return out


def largest_break(distances, labels):
    """(break label uint16, size float32, valid) of the largest consecutive distance per pixel; the label is the
    later year of the pair; the first pair wins a tie; invalid where no pair is valid."""
    valid = ~np.isnan(distances).all(axis=0)
    filled = np.where(np.isnan(distances), -1.0, distances)
    index = filled.argmax(axis=0)
    size = np.take_along_axis(filled, index[np.newaxis], axis=0)[0].astype(np.float32)
    later = np.asarray(labels[1:], dtype=np.uint16)[index]
    return np.where(valid, later, BREAK_NODATA).astype(np.uint16), np.where(valid, size, NODATA).astype(np.float32), valid


class Trajectory:
    """Pass 1 over N years' rasters on one grid, then the output blocks of pass 2 (see the module docstring)."""

    def __init__(self, rasters, labels, scratch_path, with_anomaly=False, block=None):
        if len(rasters) < 2:
            raise GeoEmbedError(f"INPUT has {len(rasters)} raster(s); give two or more years of the same product.")
        first = rasters[0]
        for position, raster in enumerate(rasters[1:], start=2):
            check_same_bands(first, raster, "INPUT 1", f"INPUT {position}")
            if not same_grid(first.grid, raster.grid):
                raise GeoEmbedError(f"INPUT {position} must be put on the first raster's grid (analysis.resample.nearest).")
        self.rasters = list(rasters)
        self.labels = list(labels)
        self.grid = first.grid
        self.pairs = len(rasters) - 1
        self.with_anomaly = with_anomaly
        self.block = block or block_side(len(rasters), first.band_count)
        self.scratch_path = scratch_path
        self.edges = np.linspace(0.0, MAX_DISTANCE, HISTOGRAM_BINS + 1)
        self.counts = np.zeros((self.pairs, HISTOGRAM_BINS), dtype=np.int64)
        height = self.grid.height
        self.valid_per_row = np.zeros((self.pairs, height), dtype=np.int64)
        self.changed_per_row = np.zeros((self.pairs, height), dtype=np.int64)
        self.any_valid_per_row = np.zeros(height, dtype=np.int64)  # pixels with at least one valid pair
        self.any_changed_per_row = np.zeros(height, dtype=np.int64)  # pixels whose largest change is above threshold
        self.threshold = None
        self._scratch = None

    @property
    def band_names(self):
        return pair_names(self.labels)

    def compute(self, progress=None, is_cancelled=None):
        """Pass 1: distances (and anomalies) into the scratch file, histograms. Closes the inputs."""
        grid = self.grid
        windows = list(grid.blocks(self.block))
        layers = self.pairs + (len(self.rasters) if self.with_anomaly else 0)
        self._scratch = np.lib.format.open_memmap(
            self.scratch_path, mode="w+", dtype=np.float32, shape=(layers, grid.height, grid.width)
        )
        readers = []
        try:
            for raster in self.rasters:  # each year read in the background, in the order of the windows
                readers.append(Prefetched(raster, windows))
            for done, window in enumerate(windows, start=1):
                if is_cancelled and is_cancelled():
                    raise Cancelled()
                blocks = [reader.read(window) for reader in readers]
                rows = slice(window.row, window.row + window.height)
                cols = slice(window.col, window.col + window.width)
                distances = consecutive_distances(blocks)
                self._scratch[: self.pairs, rows, cols] = distances
                if self.with_anomaly:
                    self._scratch[self.pairs :, rows, cols] = anomalies(blocks)
                del blocks
                valid = ~np.isnan(distances)
                for pair in range(self.pairs):
                    values = distances[pair][valid[pair]]
                    self.counts[pair] += np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, MAX_DISTANCE))[0]
                    self.valid_per_row[pair, rows] += valid[pair].sum(axis=1)
                self.any_valid_per_row[rows] += valid.any(axis=0).sum(axis=1)
                if progress:
                    progress(done / len(windows))
        finally:
            for reader in readers:
                reader.close()
        self._scratch.flush()

    @property
    def valid_pixels(self):
        """Pixels with at least one valid pair."""
        return int(self.any_valid_per_row.sum())

    def automatic_threshold(self):
        """(Otsu threshold, separability) over all consecutive distances."""
        return otsu_threshold(self.counts.sum(axis=0), self.edges)

    def percentile(self, q):
        """Approximate q-th percentile of all valid consecutive distances (to the histogram's bin width)."""
        return histogram_percentile(self.counts.sum(axis=0), self.edges, q)

    def produce(self, window):
        """Pass 2: {"distance", "break_year", "break_size", "anomaly"} EmbeddingBlocks of a window (nodata filled in:
        each band has its own validity, the blocks' valid mask is the pixels valid in some band)."""
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        distances = np.array(self._scratch[: self.pairs, rows, cols])
        nan = np.isnan(distances)
        year, size, any_valid = largest_break(distances, self.labels)
        if window.col == 0:  # each row is counted once: its blocks are written west to east, and this is the first
            self.changed_per_row[:, rows] = 0
            self.any_changed_per_row[rows] = 0
        changed = ~nan & (np.where(nan, 0.0, distances) > self.threshold)
        self.changed_per_row[:, rows] += changed.sum(axis=2)
        self.any_changed_per_row[rows] += changed.any(axis=0).sum(axis=1)
        out = {
            "distance": EmbeddingBlock(np.where(nan, NODATA, distances), any_valid),
            "break_year": EmbeddingBlock(year, any_valid & (size > self.threshold)),  # a year only where it changed
            "break_size": EmbeddingBlock(size, any_valid),
        }
        if self.with_anomaly:
            values = np.array(self._scratch[self.pairs :, rows, cols])
            missing = np.isnan(values)
            out["anomaly"] = EmbeddingBlock(np.where(missing, NODATA, values), ~missing.all(axis=0))
        return out

    def pair_summaries(self):
        """Per consecutive pair: labels, valid and changed pixels and areas (m²), changed fraction of the valid area."""
        areas = pixel_areas_m2(self.grid)
        return [
            {
                "pair": name,
                "from": self.labels[pair],
                "to": self.labels[pair + 1],
                **changed_area(self.changed_per_row[pair], self.valid_per_row[pair], areas),
            }
            for pair, name in enumerate(self.band_names)
        ]

    def summary(self):
        """Pixels changed in at least one pair (largest change above the threshold) and their area, over the pixels
        with at least one valid pair."""
        return changed_area(self.any_changed_per_row, self.any_valid_per_row, pixel_areas_m2(self.grid))

    def close(self):
        """Drop the scratch file (safe to call more than once)."""
        self._scratch = None
        remove_scratch(self.scratch_path)


def scratch_path_for(output):
    """A hidden scratch file beside an output, removed by Trajectory.close()."""
    return scratch_path_beside(output, "trajectory")
