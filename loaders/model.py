"""The one model every product becomes: an embedding raster read block by block.

An embedding raster has a north-up grid with a CRS, band names, a nodata mask and provenance.
Its values are only ever materialised one block at a time (a full AEF tile as float32 is 16 GiB).
"""

from dataclasses import dataclass, field

import numpy as np

NODATA = -9999.0
"""Nodata value of every Float32 raster GeoEmbed writes (embedding values are never this)."""


@dataclass
class EmbeddingBlock:
    """De-quantised values (bands, rows, cols) as float32 and a (rows, cols) mask of valid pixels."""

    values: np.ndarray
    valid: np.ndarray


@dataclass
class Provenance:
    """Where the values came from and what was done to them; written into the output's metadata."""

    product: str
    product_name: str
    year: int = None
    sources: list = field(default_factory=list)
    dequantization: str = ""
    licence: str = ""
    attribution: str = ""
    resampling: str = "nearest"
    notes: list = field(default_factory=list)
    product_version: str = ""  # a dataset version within the product (e.g. Tessera v1 or v2): never compare across them


class EmbeddingRaster:
    """Interface: subclasses provide grid, band_names, provenance and read(window)."""

    grid = None
    band_names = ()
    provenance = None

    @property
    def band_count(self):
        return len(self.band_names)

    def read(self, window):
        """EmbeddingBlock for a Window of self.grid."""
        raise NotImplementedError

    def read_linear(self, window):
        """(terms, valid, scale): values = terms * scale, terms 0 where not valid, so sums of terms are sums of values.

        Quantised products override this to hand over integer terms, summed exactly and without de-quantising."""
        block = self.read(window)
        terms = np.where(block.valid[np.newaxis], block.values, np.float32(0))
        return terms, block.valid, 1.0

    def blocks(self, size=512):
        """(window, EmbeddingBlock) pairs covering the raster from north to south."""
        for window in self.grid.blocks(size):
            yield window, self.read(window)
