"""similarity: query vector, per-pixel cosine, counter-examples and exact top-k, all against brute force."""

import numpy as np
import pytest

from geoembed.analysis.similarity import SimilarityRaster, TopK, query_vector
from tests.unit.test_analysis_memraster import MemRaster, make_grid, random_raster


def brute_cosine(raster, query):
    """float64 cosine of every pixel (NaN where invalid or zero), one pixel at a time."""
    bands, height, width = raster.values.shape
    q = np.asarray(query, dtype=np.float64)
    out = np.full((height, width), np.nan)
    for row in range(height):
        for col in range(width):
            if raster.valid[row, col]:
                v = raster.values[:, row, col].astype(np.float64)
                norm = np.sqrt(np.sum(v * v))
                if norm > 0:
                    out[row, col] = np.sum(v * q) / (norm * np.sqrt(np.sum(q * q)))
    return out


def brute_top(scores, k):
    """[(score, row, col)] of the k best valid pixels, ties north then west."""
    rows, cols = np.nonzero(np.isfinite(scores))
    entries = sorted(zip((-scores[rows, cols]).tolist(), rows.tolist(), cols.tolist()))
    return [(-s, r, c) for s, r, c in entries[:k]]


def read_all(sim, size):
    """Read a SimilarityRaster in size x size blocks; (score, valid) of the whole raster."""
    score = np.full((sim.grid.height, sim.grid.width), np.nan, dtype=np.float32)
    valid = np.zeros((sim.grid.height, sim.grid.width), dtype=bool)
    for window, block in sim.blocks(size):
        assert block.values.shape == (1, window.height, window.width)
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        score[rows, cols] = block.values[0]
        valid[rows, cols] = block.valid
    return score, valid


def test_query_vector_is_normalised_mean_of_normalised_vectors():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5, 9)) * np.array([[0.01], [1.0], [30.0], [2.0], [500.0]])
    units = [v / np.sqrt(np.sum(v * v)) for v in vectors]
    mean = sum(units) / len(units)
    expected = mean / np.sqrt(np.sum(mean * mean))
    q = query_vector(vectors)
    np.testing.assert_allclose(q, expected, atol=1e-12)
    assert abs(np.linalg.norm(q) - 1.0) < 1e-12
    # scaling one query vector changes nothing (a plain mean would follow the large vectors)
    scaled = vectors.copy()
    scaled[4] *= 1e-3
    np.testing.assert_allclose(query_vector(scaled), expected, atol=1e-12)
    np.testing.assert_allclose(query_vector(vectors[:1]), units[0], atol=1e-12)


def test_similarity_equals_brute_force_cosine():
    raster = random_raster(23, 19, bands=8, seed=2)
    raster.values[:, 0, 0] = 0.0  # a valid zero vector: no direction, must not produce NaN as a valid value
    q = query_vector(np.random.default_rng(3).normal(size=(3, 8)))
    sim = SimilarityRaster(raster, q)
    assert sim.band_names == ("similarity",) and sim.grid == raster.grid
    score, valid = read_all(sim, 5)
    expected = brute_cosine(raster, q)
    assert not valid[~raster.valid].any(), "nodata pixels became valid"
    np.testing.assert_array_equal(valid, np.isfinite(expected))
    np.testing.assert_allclose(score[valid], expected[valid], atol=1e-5)
    assert np.isfinite(score[valid]).all()
    assert valid.sum() > 200


def test_negative_query_subtracts_its_cosine():
    raster = random_raster(17, 13, bands=6, seed=4)
    rng = np.random.default_rng(5)
    q, neg = query_vector(rng.normal(size=(2, 6))), query_vector(rng.normal(size=(2, 6)))
    score, valid = read_all(SimilarityRaster(raster, q, negative=neg), 4)
    expected = brute_cosine(raster, q) - brute_cosine(raster, neg)
    np.testing.assert_array_equal(valid, np.isfinite(expected))
    np.testing.assert_allclose(score[valid], expected[valid], atol=1e-5)
    assert (np.abs(expected[valid]) > 0.05).mean() > 0.5  # the negative term is not negligible


@pytest.mark.parametrize("k", [1, 7, 25])
@pytest.mark.parametrize("size", [3, 4, 64])
def test_top_k_over_small_blocks_equals_brute_force(k, size):
    raster = random_raster(23, 19, bands=8, seed=6)
    q = query_vector(np.random.default_rng(7).normal(size=(2, 8)))
    sim = SimilarityRaster(raster, q, k=k)
    read_all(sim, size)
    expected = brute_top(brute_cosine(raster, q), k)
    ordered = sorted(s for s, _, _ in brute_top(brute_cosine(raster, q), k + 1))[::-1]
    assert min(a - b for a, b in zip(ordered[:-1], ordered[1:])) > 1e-5  # no near-ties in this data
    assert len(sim.top.scores) == k
    np.testing.assert_allclose(sim.top.scores, [s for s, _, _ in expected], atol=1e-5)
    assert list(zip(sim.top.rows.tolist(), sim.top.cols.tolist())) == [(r, c) for _, r, c in expected]


def tied_raster(width=12, height=10, best=((7, 9), (2, 11)), worse=((0, 0), (5, 5))):
    """Query e0: most pixels (3, 4, 0) score exactly 0.6, `best` pixels 1.0, `worse` 0.0; nodata at (1, 2)."""
    values = np.zeros((3, height, width), dtype=np.float32)
    values[0], values[1] = 3.0, 4.0
    for r, c in best:
        values[:, r, c] = (2.0, 0.0, 0.0)
    for r, c in worse:
        values[:, r, c] = (0.0, 0.0, 1.0)
    valid = np.ones((height, width), dtype=bool)
    valid[1, 2] = False
    return MemRaster(values, valid, make_grid(width, height))


@pytest.mark.parametrize("size", [64, 4])
def test_top_k_ties_go_north_then_west(size):
    raster = tied_raster()
    sim = SimilarityRaster(raster, np.array([1.0, 0.0, 0.0]), k=6)
    read_all(sim, size)
    # brute force: both 1.0 pixels (north first), then the first four 0.6 pixels in reading order
    expected = [(2, 11), (7, 9), (0, 1), (0, 2), (0, 3), (0, 4)]
    np.testing.assert_allclose(sim.top.scores, [1.0, 1.0, 0.6, 0.6, 0.6, 0.6], atol=1e-6)
    assert list(zip(sim.top.rows.tolist(), sim.top.cols.tolist())) == expected


def test_top_k_ties_across_blocks_smaller_than_k():
    # blocks of 2 x 2 pixels never hold more than k candidates: ordering comes from merging blocks alone
    raster = tied_raster()
    sim = SimilarityRaster(raster, np.array([1.0, 0.0, 0.0]), k=6)
    read_all(sim, 2)
    expected = [(2, 11), (7, 9), (0, 1), (0, 2), (0, 3), (0, 4)]
    assert list(zip(sim.top.rows.tolist(), sim.top.cols.tolist())) == expected


def test_top_k_class_keeps_earliest_of_tied_scores():
    scores = np.full((6, 6), 0.5, dtype=np.float32)
    valid = np.ones((6, 6), dtype=bool)
    top = TopK(4)
    top.add(scores, valid, 10, 20)
    assert list(zip(top.rows.tolist(), top.cols.tolist())) == [(10, 20), (10, 21), (10, 22), (10, 23)]


def test_top_k_larger_than_valid_count_returns_every_valid_pixel():
    raster = random_raster(6, 5, bands=4, seed=8, holes=0.3)
    q = query_vector(np.random.default_rng(9).normal(size=(1, 4)))
    sim = SimilarityRaster(raster, q, k=1000)
    read_all(sim, 2)
    expected = brute_top(brute_cosine(raster, q), 1000)
    assert len(expected) == raster.valid.sum() < 30
    assert len(sim.top.scores) == len(expected)
    np.testing.assert_allclose(sim.top.scores, [s for s, _, _ in expected], atol=1e-5)
    assert list(zip(sim.top.rows.tolist(), sim.top.cols.tolist())) == [(r, c) for _, r, c in expected]


def test_top_k_zero_keeps_nothing_and_heatmap_still_works():
    raster = random_raster(9, 7, bands=4, seed=10)
    q = query_vector(np.random.default_rng(11).normal(size=(1, 4)))
    sim = SimilarityRaster(raster, q, k=0)
    score, valid = read_all(sim, 3)
    assert len(sim.top.scores) == len(sim.top.rows) == len(sim.top.cols) == 0
    expected = brute_cosine(raster, q)
    np.testing.assert_allclose(score[valid], expected[valid], atol=1e-5)


def test_close_closes_the_source():
    raster = random_raster(4, 4, bands=2)
    SimilarityRaster(raster, np.array([1.0, 0.0])).close()
    assert raster.closed
