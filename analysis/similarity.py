"""Cosine similarity of every pixel to a query vector, with an exact top-k found block by block."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..loaders.model import EmbeddingBlock, EmbeddingRaster
from ..loaders.raster.embedding_tiff import EmbeddingTiff
from ..loaders.raster.overviews import View, clip_window
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK, OutputSpec, in_row_pairs, write_rasters
from .blas import matmul
from .regions import feature_vectors, unit


def query_vector(vectors):
    """The L2-normalised mean of the L2-normalised query vectors."""
    vectors = np.asarray(vectors, dtype=np.float64)
    mean = unit(vectors).mean(axis=0)
    return unit(mean)


def cosine(block_values, valid, query):
    """(rows, cols) float32 cosine similarity of each pixel vector to a unit query vector."""
    bands = block_values.shape[0]
    flat = block_values.reshape(bands, -1)
    dots = matmul(query.astype(np.float32), flat)
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
    """One band: cosine similarity to the query, minus the similarity to the negative query if given. Its blocks are
    to be read in the order `order` gives (write_rasters' order argument)."""

    order = staticmethod(in_row_pairs)

    def __init__(self, raster, query, negative=None, k=0, block=BLOCK):
        # read, and written, two block rows at a time (order): each 1024-pixel tile of an AEF source is then
        # decompressed once, even when GDAL's block cache cannot hold a whole row of them
        self.source = Prefetched(raster, self.order(list(raster.grid.blocks(block))))
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


# --- the panel's first view: the visible extent at screen resolution, from the overview level that fits --------


def query_at(raster, points, negative_points=()):
    """(query, negative query or None) of the full-resolution pixels under points [(x, y)] in the raster's CRS, as
    geoembed:similarity computes them; query is None when no point lies on a valid pixel."""
    vectors = [v for v in feature_vectors(raster, [("point", p) for p in points]) if v is not None]
    negatives = [v for v in feature_vectors(raster, [("point", p) for p in negative_points]) if v is not None]
    return (query_vector(vectors) if vectors else None), (query_vector(negatives) if negatives else None)


def preview_heatmap(path, query, negative, bounds, width, height, output):
    """Write the heatmap of the view bounds (xmin, ymin, xmax, ymax in the raster's CRS) drawn on width x height
    screen pixels to output, reading from the coarsest overview level that still has a pixel per screen pixel (at
    most 4 per screen pixel), whatever the raster's size; returns the overview factor used (1: full resolution), or
    None when bounds miss the raster."""
    raster = EmbeddingTiff(path)
    grid = raster.grid
    raster.close()
    window = clip_window(grid, bounds)
    if window is None:
        return None
    # the screen pixels the raster covers: the layer may fill only part of the view
    need_width = window.width * grid.res_x * width / (bounds[2] - bounds[0])
    need_height = window.height * grid.res_y * height / (bounds[3] - bounds[1])
    view = View(path, grid, window, need_width, need_height)
    score, ok = view_cosine(view, query, negative)
    spec = OutputSpec(output, ("similarity",), metadata={"GEOEMBED_ANALYSIS": f"similarity preview, overview x{view.factor}"})

    def produce(w):
        rows, cols = slice(w.row, w.row + w.height), slice(w.col, w.col + w.width)
        return [EmbeddingBlock(score[np.newaxis, rows, cols], ok[rows, cols])]

    write_rasters(view.grid, [spec], produce)
    return view.factor


PREVIEW_CHUNKS = 4  # bands are read in this many parts, two at a time (GDAL decompresses in parallel threads)


def view_cosine(view, query, negative=None):
    """(score, valid) of cosine(query) [- cosine(negative)] over a View, as cosine() computes them, accumulated a
    few bands at a time so the view's values are never all in memory."""
    bands = view.band_count
    edges = [round(i * bands / PREVIEW_CHUNKS) for i in range(PREVIEW_CHUNKS + 1)]
    queries = np.stack([query] + ([negative] if negative is not None else [])).astype(np.float32)

    def part(first, last):
        values, valid = view.read(first, last)
        flat = values.reshape(last - first, -1)
        return matmul(queries[:, first:last], flat), np.einsum("ij,ij->j", flat, flat), valid

    dots, norms, valid = 0, 0, True
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="geoembed-preview") as pool:
        for part_dots, part_norms, part_valid in pool.map(lambda e: part(*e), zip(edges[:-1], edges[1:])):
            dots, norms, valid = dots + part_dots, norms + part_norms, valid & part_valid
    shape = (view.window.height, view.window.width)
    norms = np.sqrt(norms)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(norms > 0, dots / norms, 0.0).astype(np.float32)
    score = scores[0] if negative is None else scores[0] - scores[1]
    return score.reshape(shape), valid & (norms.reshape(shape) > 0)
