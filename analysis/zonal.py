"""Embeddings per zone: the mean vector of the valid pixels under each polygon, how spread they are, how many.

Each zone is read on its own, over the windows it covers (at most BLOCK x BLOCK pixels at a time), so overlapping
zones each get all their pixels and a zone as large as a whole tile takes one block of memory. Per zone only three
sums are kept (float64): the pixels' vectors, their unit vectors and the count. From them:

- mean: the sum divided by the count; L2-normalised when the product's vectors are unit vectors (AEF), so the
  result is a vector of the same kind as the pixels';
- spread: the mean cosine distance (1 - cos) of the pixels' vectors to the mean, 0 when they all point the same
  way. Since cos(v, m) = (v / |v|) . (m / |m|), it is 1 - (mean of the unit vectors) . (m / |m|): one pass.
  Pixels whose vector is all zeros have no direction and are left out of it; NaN when no pixel has a direction
  or the mean is the zero vector.
"""

from dataclasses import dataclass

import numpy as np

from ..loaders.errors import Cancelled
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK
from .blas import matmul

CHUNK = 65536  # pixels summed at once: 64 bands x 65536 x float64 = 32 MiB of temporaries


@dataclass
class ZonalResult:
    means: np.ndarray  # (zones, bands) float64, NaN for a zone without a valid pixel
    spread: np.ndarray  # (zones,) float64, NaN where undefined
    pixels: np.ndarray  # (zones,) int64


class ZoneSums:
    """The running sums of one zone."""

    def __init__(self, bands):
        self.count = 0
        self.directed = 0  # pixels with a non-zero vector
        self.sums = np.zeros(bands, dtype=np.float64)
        self.unit_sums = np.zeros(bands, dtype=np.float64)

    def add(self, vectors, chunk=CHUNK):
        """vectors: (bands, n) values of n valid pixels, summed in float64 a chunk of pixels at a time."""
        for start in range(0, vectors.shape[1], chunk):
            part = vectors[:, start : start + chunk].astype(np.float64)
            norms = np.sqrt(np.einsum("ij,ij->j", part, part))
            directed = norms > 0
            self.count += part.shape[1]
            self.directed += int(directed.sum())
            self.sums += part.sum(axis=1)
            self.unit_sums += matmul(part[:, directed], 1.0 / norms[directed])

    def result(self, normalise):
        """(mean (bands,), spread) - NaNs when the zone has no valid pixel."""
        if self.count == 0:
            return np.full(self.sums.shape, np.nan), np.nan
        mean = self.sums / self.count
        length = np.linalg.norm(mean)
        if length == 0 or self.directed == 0:
            return mean, np.nan
        direction = mean / length
        spread = float(np.clip(1.0 - (self.unit_sums / self.directed) @ direction, 0.0, 2.0))
        return (direction if normalise else mean), spread


def zonal_means(raster, zones, normalise=False, block=BLOCK, progress=None, is_cancelled=None):
    """ZonalResult for zones over an EmbeddingRaster.

    zones: objects with blocks(grid, size) -> [Window] (the windows a zone may cover) and mask(grid, window) ->
    (height, width) bool (the pixels it covers), e.g. loaders.raster.rasterize.PolygonMask. progress(fraction) is
    called after each zone and each window of a zone; is_cancelled() before each read.
    """
    grid, zones = raster.grid, list(zones)
    plans = [zone.blocks(grid, block) for zone in zones]  # known in advance, so the reads are prefetched in order
    count, bands = len(plans), raster.band_count
    means = np.full((count, bands), np.nan)
    spread = np.full(count, np.nan)
    pixels = np.zeros(count, dtype=np.int64)
    reader = Prefetched(raster, [window for windows in plans for window in windows])
    try:
        for index, (zone, windows) in enumerate(zip(zones, plans)):
            sums = ZoneSums(bands)
            for done, window in enumerate(windows, start=1):
                if is_cancelled and is_cancelled():
                    raise Cancelled()
                data = reader.read(window)
                take = zone.mask(grid, window) & data.valid
                if take.any():
                    sums.add(data.values[:, take])
                if progress and done < len(windows):  # a zone of many blocks moves the bar too
                    progress((index + done / len(windows)) / count)
            means[index], spread[index] = sums.result(normalise)
            pixels[index] = sums.count
            if progress:
                progress((index + 1) / count)
    finally:
        reader.close()
    return ZonalResult(means, spread, pixels)
