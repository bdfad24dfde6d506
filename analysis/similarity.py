"""Cosine similarity of every pixel to a query vector, with an exact top-k found block by block."""

import numpy as np

from ..loaders.model import EmbeddingBlock, EmbeddingRaster
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK
from .regions import unit


def query_vector(vectors):
    """The L2-normalised mean of the L2-normalised query vectors."""
    vectors = np.asarray(vectors, dtype=np.float64)
    mean = unit(vectors).mean(axis=0)
    return unit(mean)


def cosine(block_values, valid, query):
    """(rows, cols) float32 cosine similarity of each pixel vector to a unit query vector."""
    bands = block_values.shape[0]
    flat = block_values.reshape(bands, -1)
    dots = query.astype(np.float32) @ flat
    norms = np.sqrt(np.einsum("ij,ij->j", flat, flat))
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(norms > 0, dots / norms, 0.0).astype(np.float32)
    return similarity.reshape(valid.shape), valid & (norms.reshape(valid.shape) > 0)


class TopK:
    """The k best (score, row, col) seen so far; ties go to the earlier pixel (north, then west)."""

    def __init__(self, k):
        self.k = k
        self.scores = np.zeros(0, dtype=np.float64)
        self.rows = np.zeros(0, dtype=np.int64)
        self.cols = np.zeros(0, dtype=np.int64)

    def add(self, scores, valid, row0, col0):
        if self.k <= 0 or not valid.any():
            return
        local_rows, local_cols = np.nonzero(valid)
        values = scores[local_rows, local_cols].astype(np.float64)
        if len(values) > self.k:
            # Keep everything scoring at least the k-th best, so ties are settled by position below.
            threshold = np.partition(values, len(values) - self.k)[len(values) - self.k]
            keep = values >= threshold
            values, local_rows, local_cols = values[keep], local_rows[keep], local_cols[keep]
        scores_all = np.concatenate([self.scores, values])
        rows_all = np.concatenate([self.rows, local_rows + row0])
        cols_all = np.concatenate([self.cols, local_cols + col0])
        order = np.lexsort((cols_all, rows_all, -scores_all))[: self.k]
        self.scores, self.rows, self.cols = scores_all[order], rows_all[order], cols_all[order]


class SimilarityRaster(EmbeddingRaster):
    """One band: cosine similarity to the query, minus the similarity to the negative query if given."""

    def __init__(self, raster, query, negative=None, k=0, block=BLOCK):
        self.source = Prefetched(raster, raster.grid.blocks(block))  # written block by block, in this order
        self.grid = raster.grid
        self.band_names = ("similarity",)
        self.provenance = raster.provenance
        self.query = query
        self.negative = negative
        self.top = TopK(k)

    def read(self, window):
        block = self.source.read(window)
        score, valid = cosine(block.values, block.valid, self.query)
        if self.negative is not None:
            score = score - cosine(block.values, block.valid, self.negative)[0]
        self.top.add(score, valid, window.row, window.col)
        return EmbeddingBlock(score[np.newaxis], valid)

    def close(self):
        self.source.close()
