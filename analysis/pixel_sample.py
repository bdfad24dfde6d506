"""A uniform random sample of the valid pixels of an embedding raster, read block by block in bounded memory."""

import numpy as np

from ..loaders.errors import Cancelled

BLOCK = 512


def sample_pixels(raster, size, seed=0, block=BLOCK, progress=None, is_cancelled=None):
    """(vectors (n, bands) float32, valid_count): min(size, valid_count) valid pixels drawn without replacement.

    Every valid pixel gets a random key and the `size` smallest keys over all blocks are kept, so each
    valid pixel is equally likely to be drawn, memory is `size` vectors plus one block whatever the
    raster's size, and the same seed gives the same sample. The vectors come in random order (by key).
    progress(fraction) and is_cancelled() are optional.
    """
    if size < 1:
        raise ValueError("sample size must be at least 1")
    rng = np.random.default_rng(seed)
    keys = np.empty(0, dtype=np.float64)
    vectors = np.empty((0, raster.band_count), dtype=np.float32)
    valid_count = 0
    windows = list(raster.grid.blocks(block))
    for done, window in enumerate(windows, start=1):
        if is_cancelled and is_cancelled():
            raise Cancelled()
        data = raster.read(window)
        rows, cols = np.nonzero(data.valid)
        valid_count += len(rows)
        if len(rows):
            new_keys = rng.random(len(rows))
            if len(keys) + len(new_keys) > size:  # gather only the pixels whose keys can stay among the `size` smallest
                threshold = np.partition(np.concatenate([keys, new_keys]), size - 1)[size - 1]
                take = np.flatnonzero(new_keys <= threshold)
                rows, cols, new_keys = rows[take], cols[take], new_keys[take]
            new_vectors = data.values[:, rows, cols].T.astype(np.float32, copy=False)
            keys = np.concatenate([keys, new_keys])
            vectors = np.concatenate([vectors, new_vectors])
            if len(keys) > size:
                keep = np.argpartition(keys, size - 1)[:size]
                keys, vectors = keys[keep], vectors[keep]
        if progress:
            progress(done / len(windows))
    order = np.argsort(keys, kind="stable")
    return np.ascontiguousarray(vectors[order]), valid_count
