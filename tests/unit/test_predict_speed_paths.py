"""The fast prediction paths of issue 15 give scikit-learn's predictions: the class map ClassRasters streams block by
block (read ahead, pixel columns predicted in chunks, no copy of a block) equals the fitted estimator's predict and
predict_proba pixel by pixel, for every method, block size, row order and nodata; the float32 kNN screening and the
level-by-level forest walk decide exactly as the float64 search and scikit-learn's trees.

Expectations come from scikit-learn itself (the fitted estimators), not from geoembed.
"""

import math

import numpy as np
import pytest

from geoembed.analysis import classify, predictors
from geoembed.analysis.classify import ClassRasters, TrainedModel, pixel_columns
from geoembed.loaders.model import EmbeddingBlock
from geoembed.loaders.raster.writer import in_row_pairs
from tests.unit.test_analysis_memraster import MemRaster, make_grid

pytest.importorskip("sklearn")

BANDS = 16
CLASSES = 4
TOLERANCE = 1e-6


def labelled(n, seed):
    """Float32 unit-ish vectors and four overlapping classes (probabilities strictly between 0 and 1)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(5).normal(size=(CLASSES, BANDS))
    labels = rng.integers(0, CLASSES, n)
    return (centres[labels] + 1.5 * rng.normal(size=(n, BANDS))).astype(np.float32), labels


def trained(method):
    features, labels = labelled(800, 0)
    estimator = classify.make_model(method).fit(features, labels)
    model = TrainedModel(estimator, list("ABCD"), [f"A{i:02d}" for i in range(BANDS)], "test", method)
    return estimator, model


class SouthUpRaster(MemRaster):
    """Blocks as a south-up file gives them: row-reversed views of contiguous arrays, NaN at nodata."""

    def read(self, window):
        block = super().read(window)
        values = np.ascontiguousarray(block.values[:, ::-1])[:, ::-1]
        values[:, ~block.valid] = np.nan
        return EmbeddingBlock(values, block.valid)


def raster_of(kind, width, height, seed=1):
    features, _ = labelled(width * height, seed)
    values = features.T.reshape(BANDS, height, width)
    valid = np.random.default_rng(seed).random((height, width)) > 0.1
    valid[: height // 3, : width // 3] = False  # a chunk of a block without any valid pixel
    return kind(values, valid, make_grid(width, height)), values, valid


def class_maps(producer, grid, block):
    classes = np.zeros((grid.height, grid.width), dtype=np.int64)
    confidence = np.zeros((grid.height, grid.width), dtype=np.float64)
    try:
        for window in producer.order(list(grid.blocks(block))):  # the order the producer reads ahead in
            out = producer.produce(window)
            rows = slice(window.row, window.row + window.height)
            cols = slice(window.col, window.col + window.width)
            classes[rows, cols] = np.where(out[0].valid, out[0].values, 0)
            confidence[rows, cols] = np.where(out[1].valid, out[1].values, -1)
    finally:
        producer.close()
    return classes, confidence


@pytest.mark.parametrize("method", classify.METHODS)
@pytest.mark.parametrize("kind", [MemRaster, SouthUpRaster])
@pytest.mark.parametrize("block", [512, 37])
def test_class_map_equals_sklearn_pixel_by_pixel(method, kind, block):
    estimator, model = trained(method)
    raster, values, valid = raster_of(kind, 150, 101)
    classes, confidence = class_maps(ClassRasters(raster, model, block), raster.grid, block)
    pixels = values[:, valid].T
    np.testing.assert_array_equal(classes[valid], estimator.predict(pixels) + 1)
    np.testing.assert_allclose(confidence[valid], estimator.predict_proba(pixels).max(axis=1), rtol=0, atol=TOLERANCE)
    assert (classes[~valid] == 0).all() and (confidence[~valid] == -1).all()
    # each block read once, two block rows at a time; left open
    assert raster.reads == in_row_pairs(list(raster.grid.blocks(block))) and not raster.closed


@pytest.mark.parametrize("method", classify.METHODS)
def test_blocks_are_predicted_in_chunks_never_whole(method, monkeypatch):
    """Each prediction call gets at most chunk_pixels pixels (a few MiB of working arrays), whatever the block."""
    estimator, model = trained(method)
    step = model.estimator.chunk_pixels(BANDS)
    side = math.isqrt(step) + 1  # one block of more pixels than a chunk
    raster, _, _ = raster_of(MemRaster, side, side)
    sizes = []
    original = type(model.estimator).best
    monkeypatch.setattr(
        type(model.estimator), "best", lambda self, f, valid=None: sizes.append(len(f)) or original(self, f, valid)
    )
    class_maps(ClassRasters(raster, model, side), raster.grid, side)
    assert max(sizes) <= step < side * side


def test_pixel_columns_are_views_of_the_block():
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    columns, flipped = pixel_columns(data)
    assert not flipped and np.shares_memory(columns, data)
    columns, flipped = pixel_columns(data[:, ::-1])
    assert flipped and np.shares_memory(columns, data)
    np.testing.assert_array_equal(columns.reshape(2, 3, 4)[:, ::-1], data[:, ::-1])


def test_knn_screening_decides_as_the_float64_search():
    """Near-ties (training vectors repeated, queries on training vectors and between two) go to the float64 search;
    the rest are screened in float32: the neighbours are the same either way."""
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(300, BANDS)).astype(np.float32)
    vectors[100:110] = vectors[0]  # ten copies: ties at the k-th place
    queries = np.concatenate(
        [rng.normal(size=(500, BANDS)), vectors[:20], (vectors[:20] + vectors[20:40]) / 2, vectors[:5] + 1e-7]
    )
    search = predictors.NeighbourSearch(vectors, 5)
    rows, candidates = search._screen(queries)  # noqa: SLF001
    assert 0 < len(rows) < len(queries)  # some rows screened, the tied ones not
    got, distance = search.neighbours(queries, np.float64)
    squared = ((queries[:, None, :] - vectors.astype(np.float64)[None]) ** 2).sum(axis=2)
    expected = np.argsort(squared, axis=1, kind="stable")[:, :5]
    same = (got == expected).all(axis=1)
    # where exact float64 ties in the brute force differ by rounding, the distances still agree
    np.testing.assert_allclose(np.take_along_axis(squared, got, axis=1), np.take_along_axis(squared, expected, axis=1), atol=1e-9)
    assert same.mean() > 0.99
    np.testing.assert_allclose(distance**2, np.take_along_axis(squared, got, axis=1), atol=1e-9)


@pytest.mark.parametrize("samples", [6, 12, 40, 170])
def test_knn_with_few_training_vectors_predicts_as_sklearn(samples):
    """Fewer training vectors than the screening's groups, or than k + its spare candidates."""
    from sklearn.neighbors import KNeighborsClassifier

    features, labels = labelled(samples, 6)
    labels[:CLASSES] = np.arange(CLASSES)
    estimator = KNeighborsClassifier(n_neighbors=5, weights="distance").fit(features, labels)
    predictor = predictors.from_estimator(estimator)
    probe = labelled(700, 7)[0]
    np.testing.assert_allclose(predictor.predict_proba(probe), estimator.predict_proba(probe), rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(predictor.predict(probe), estimator.predict(probe))


def test_forest_walk_at_thresholds_decides_as_sklearn():
    """Features exactly at a threshold's float32 value, and one float32 step either side, go where scikit-learn's
    float32 <= float64 comparison sends them."""
    estimator, model = trained("random_forest")
    tree = estimator.estimators_[0].tree_
    inner = np.flatnonzero(tree.children_left >= 0)[:40]
    base = labelled(len(inner), 9)[0]
    probes = []
    for row, node in zip(base, inner):
        at = np.float32(tree.threshold[node])
        for value in (at, np.nextafter(at, np.float32(-np.inf)), np.nextafter(at, np.float32(np.inf))):
            probe = row.copy()
            probe[tree.feature[node]] = value
            probes.append(probe)
    probes = np.array(probes, dtype=np.float32)
    np.testing.assert_allclose(model.estimator.predict_proba(probes), estimator.predict_proba(probes), rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(model.estimator.predict(probes), estimator.predict(probes))


def test_forest_regressor_and_knn_regressor_keep_sklearn_predictions():
    """geoembed:regress shares the forest walk and the neighbour search."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor

    features, labels = labelled(600, 3)
    targets = features @ np.random.default_rng(4).normal(size=BANDS) + labels
    probe = labelled(3000, 8)[0]
    for estimator in (
        RandomForestRegressor(n_estimators=30, random_state=0).fit(features, targets),
        KNeighborsRegressor(n_neighbors=5, weights="distance").fit(features, targets),
    ):
        got = predictors.from_regressor(estimator).predict(probe)
        np.testing.assert_allclose(got, estimator.predict(probe), rtol=1e-6, atol=1e-6)
