"""geoembed:cluster maths: k-means with scikit-learn and in pure numpy, nearest-centroid assignment, silhouette,
automatic k, the class raster block by block, and one-line refusals. Expectations come from brute force written
here (distance matrices, double loops) and from known synthetic clusterings."""

import tracemalloc

import numpy as np
import pytest
from osgeo import gdal

from geoembed.analysis import cluster
from geoembed.analysis.cluster import (
    ClusterModel,
    ClusterRaster,
    fit_kmeans,
    fit_raster,
    kmeans_numpy,
    kmeans_sklearn,
    nearest,
    normalise,
    silhouette,
)
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.raster.grid import Window
from geoembed.loaders.raster.writer import OutputSpec, write_rasters
from tests.unit.helpers import assert_one_line
from tests.unit.test_analysis_memraster import MemRaster, make_grid, random_raster
from tests.unit.test_analysis_pca import SyntheticRaster

BACKENDS = ["sklearn", "numpy"]

# ---------------------------------------------------------------- synthetic data and brute force


def directions(k, dims=16, seed=0):
    """k orthonormal directions (well separated unit vectors)."""
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dims, dims)))
    return basis[:k]


def separated_points(sizes, dims=16, noise=0.03, seed=1, scale=(1.0, 1.0)):
    """(points (n, dims), truth (n,)): cluster j has sizes[j] points around direction j, each scaled in `scale`."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(truth)
    centres = directions(len(sizes), dims)
    points = centres[truth] + noise * rng.normal(size=(len(truth), dims))
    points *= rng.uniform(*scale, size=(len(truth), 1))
    return points, truth


def same_partition(a, b):
    """True when labelings a and b group the points identically (a bijection between their labels)."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


def brute_nearest(points, centroids):
    """Index of the centroid at the smallest Euclidean distance, from the full distance matrix."""
    distances = np.sqrt(((points[:, np.newaxis, :] - centroids[np.newaxis, :, :]) ** 2).sum(axis=2))
    return distances.argmin(axis=1)


def brute_silhouette(points, labels):
    """The silhouette coefficient by its definition, one point at a time (singletons score 0)."""
    n = len(points)
    total = 0.0
    for i in range(n):
        same = [j for j in range(n) if labels[j] == labels[i] and j != i]
        if not same:
            continue
        a = np.mean([np.linalg.norm(points[i] - points[j]) for j in same])
        b = min(
            np.mean([np.linalg.norm(points[i] - points[j]) for j in range(n) if labels[j] == other])
            for other in set(labels.tolist())
            if other != labels[i]
        )
        total += (b - a) / max(a, b)
    return total / n


def cluster_raster(sizes_side=(24, 18), k=4, dims=16, noise=0.03, seed=3, holes=0.1, scale=(1.0, 1.0)):
    """A MemRaster whose pixels belong to k well-separated directions at random, with nodata holes; and the truth."""
    width, height = sizes_side
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, size=(height, width))
    vectors = directions(k, dims)[truth] + noise * rng.normal(size=(height, width, dims))
    vectors *= rng.uniform(*scale, size=(height, width, 1))
    valid = rng.random((height, width)) >= holes
    return MemRaster(vectors.transpose(2, 0, 1), valid, make_grid(width, height)), truth


# ---------------------------------------------------------------- assignment and silhouette


def test_nearest_equals_brute_force():
    rng = np.random.default_rng(0)
    points, centroids = rng.normal(size=(500, 9)), rng.normal(size=(7, 9))
    np.testing.assert_array_equal(nearest(points, centroids), brute_nearest(points, centroids))


def test_normalise_gives_unit_rows_and_keeps_zero_rows():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(20, 5)) * rng.uniform(0.01, 100, size=(20, 1))
    vectors[3] = 0.0
    unit = normalise(vectors)
    norms = np.sqrt((unit**2).sum(axis=1))
    assert np.allclose(np.delete(norms, 3), 1.0) and (unit[3] == 0).all()
    np.testing.assert_allclose(unit[0], vectors[0] / np.sqrt((vectors[0] ** 2).sum()))


def test_silhouette_equals_its_definition_and_scikit_learn():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(40, 4))
    labels = rng.integers(0, 3, size=40)
    labels[7] = 3  # a singleton cluster scores 0
    expected = brute_silhouette(points, labels)
    assert silhouette(points, labels) == pytest.approx(expected, abs=1e-10)
    assert silhouette(points, labels, chunk=7) == pytest.approx(expected, abs=1e-10)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    big = rng.normal(size=(700, 6))
    big_labels = nearest(big, big[:5])
    assert silhouette(big, big_labels) == pytest.approx(sklearn_metrics.silhouette_score(big, big_labels), abs=1e-9)


def test_silhouette_needs_two_clusters():
    with pytest.raises(ValueError):
        silhouette(np.zeros((5, 2)), np.zeros(5, dtype=int))


# ---------------------------------------------------------------- k-means


@pytest.mark.parametrize("backend", BACKENDS)
def test_well_separated_clusters_are_recovered_exactly(backend):
    points, truth = separated_points([300, 200, 150, 100, 60])
    centroids = fit_kmeans(normalise(points), 5, seed=0, backend=backend)
    labels = nearest(normalise(points), centroids)
    assert same_partition(labels, truth)
    # numbered by decreasing size: the largest true cluster (0) is class 0, the smallest (4) is class 4
    assert (labels == truth).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_clusters_follow_direction_not_length(backend):
    """Vectors of one direction at lengths 0.1..10 stay together: the distance is between unit vectors."""
    points, truth = separated_points([200, 200, 200], scale=(0.1, 10.0))
    labels = nearest(normalise(points), fit_kmeans(normalise(points), 3, seed=0, backend=backend))
    assert same_partition(labels, truth)
    raw = nearest(points, kmeans_numpy(points, 3, seed=0))  # Euclidean k-means on raw vectors splits by length
    assert not same_partition(raw, truth)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_is_deterministic_for_a_seed(backend):
    rng = np.random.default_rng(4)
    points = normalise(rng.normal(size=(3000, 8)))  # no real clusters: the result depends on the seed
    first = fit_kmeans(points, 6, seed=11, backend=backend)
    np.testing.assert_array_equal(first, fit_kmeans(points, 6, seed=11, backend=backend))


def test_numpy_kmeans_ends_at_a_lloyd_fixed_point():
    """Each centroid is the mean of the points nearest to it (the k-means optimality condition)."""
    points = normalise(np.random.default_rng(5).normal(size=(2000, 6)))
    centroids = kmeans_numpy(points, 5, seed=2, tol=0.0, max_iter=1000)
    labels = brute_nearest(points, centroids)
    for j in range(5):
        np.testing.assert_allclose(centroids[j], points[labels == j].mean(axis=0), atol=1e-12)


def test_numpy_kmeans_fills_empty_clusters():
    points = np.array([[0.0, 0.0]] * 10 + [[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 10)
    centroids = kmeans_numpy(points, 3, seed=0)
    assert len({tuple(c) for c in np.round(centroids, 9).tolist()}) == 3
    assert same_partition(nearest(points, centroids), np.repeat([0, 1, 2], 10))


def test_sklearn_and_numpy_agree_on_clear_clusters():
    pytest.importorskip("sklearn")
    points, _ = separated_points([120, 90, 60])
    points = normalise(points)
    a = nearest(points, kmeans_sklearn(points, 3, seed=0))
    b = nearest(points, kmeans_numpy(points, 3, seed=0))
    assert same_partition(a, b)


def test_classes_are_numbered_by_decreasing_size():
    points, truth = separated_points([40, 160, 90])  # true sizes: 40, 160, 90
    labels = nearest(normalise(points), fit_kmeans(normalise(points), 3, seed=0, backend="numpy"))
    assert np.bincount(labels).tolist() == [160, 90, 40]
    assert (labels[truth == 1] == 0).all() and (labels[truth == 2] == 1).all() and (labels[truth == 0] == 2).all()


# ---------------------------------------------------------------- the raster


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_raster_recovers_the_synthetic_map(backend):
    raster, truth = cluster_raster()
    model = fit_raster(raster, 4, sample_size=5000, seed=0, backend=backend)
    assert model.k == 4 and model.sample_size == raster.valid.sum()
    assert model.backend == ("sklearn MiniBatchKMeans" if backend == "sklearn" else "numpy k-means")
    classes = model.classes(raster.values, raster.valid)
    assert classes.dtype == np.uint8
    assert (classes[~raster.valid] == 0).all() and set(np.unique(classes[raster.valid])) == {1, 2, 3, 4}
    assert same_partition(classes[raster.valid], truth[raster.valid])


def test_classes_are_the_nearest_unit_centroid_of_every_pixel():
    raster = random_raster(31, 23, bands=7, seed=6)
    model = fit_raster(raster, 6, sample_size=200, seed=1, backend="numpy")
    classes = model.classes(raster.values, raster.valid)
    for row in range(23):
        for col in range(31):
            if not raster.valid[row, col]:
                assert classes[row, col] == 0
                continue
            v = raster.values[:, row, col].astype(np.float64)
            u = v / np.sqrt((v * v).sum())
            distances = [np.sqrt(((u - c) ** 2).sum()) for c in model.centroids]
            assert classes[row, col] == int(np.argmin(distances)) + 1, (row, col)


def test_cluster_raster_written_block_by_block_counts_its_classes(tmp_path):
    raster, _ = cluster_raster((40, 35))
    model = fit_raster(raster, 4, sample_size=300, seed=0, backend="numpy")
    producer = ClusterRaster(raster, model)
    path = str(tmp_path / "classes.tif")
    write_rasters(raster.grid, [OutputSpec(path, ("cluster",), gdal.GDT_Byte, 0)], producer.produce, block=16)
    written = gdal.Open(path).ReadAsArray()
    np.testing.assert_array_equal(written, model.classes(raster.values, raster.valid))
    assert producer.counts.tolist() == np.bincount(written[raster.valid], minlength=5).tolist()
    assert producer.counts[0] == 0


def test_zero_vectors_get_a_class():
    values = np.zeros((3, 2, 2))
    values[:, 0, 0] = [1, 0, 0]
    model = ClusterModel(np.array([[1.0, 0, 0], [0.1, 0, 0]]), ("a", "b", "c"), "p", "numpy", 0, 1)
    classes = model.classes(values, np.ones((2, 2), dtype=bool))
    assert classes.tolist() == [[1, 2], [2, 2]]  # |0 - c|^2 is smallest for the shortest centroid


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_k_picks_the_true_number_and_scores_every_k(backend):
    raster, truth = cluster_raster((30, 30), k=4, seed=9)
    model = fit_raster(raster, 7, auto_k=True, sample_size=2000, seed=0, backend=backend)
    assert sorted(model.scores) == [2, 3, 4, 5, 6, 7]
    assert model.k == 4 and max(model.scores, key=model.scores.get) == 4
    assert model.scores[4] > 0.8
    classes = model.classes(raster.values, raster.valid)
    assert same_partition(classes[raster.valid], truth[raster.valid])


def test_auto_k_score_is_the_silhouette_of_the_sample():
    raster, _ = cluster_raster((20, 20), k=3, seed=2)
    model = fit_raster(raster, 3, auto_k=True, sample_size=5000, seed=0, backend="numpy")
    points = normalise(raster.values[:, raster.valid].T)
    labels = nearest(points, model.centroids)
    assert model.scores[3] == pytest.approx(brute_silhouette(points, labels), abs=1e-9)


def test_fit_raster_is_deterministic_and_seed_dependent():
    raster = random_raster(40, 40, bands=5, seed=1)
    a = fit_raster(raster, 5, sample_size=800, seed=3, backend="numpy")
    b = fit_raster(raster, 5, sample_size=800, seed=3, backend="numpy")
    c = fit_raster(raster, 5, sample_size=800, seed=4, backend="numpy")
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.centroids, c.centroids)


def test_without_scikit_learn_the_numpy_backend_is_used(monkeypatch):
    monkeypatch.setattr(cluster, "has_sklearn", lambda: False)
    called = []
    monkeypatch.setattr(cluster, "kmeans_sklearn", lambda *a, **k: called.append(1))
    raster, truth = cluster_raster()
    model = fit_raster(raster, 4, sample_size=1000, seed=0)
    assert model.backend == "numpy k-means" and called == []
    assert same_partition(model.classes(raster.values, raster.valid)[raster.valid], truth[raster.valid])


# ---------------------------------------------------------------- refusals and cancel


def _refused(raster, *args, **kwargs):
    with pytest.raises(GeoEmbedError) as caught:
        fit_raster(raster, *args, **kwargs)
    return assert_one_line(caught.value)


def test_all_nodata_is_refused():
    raster = MemRaster(np.ones((3, 5, 5)), np.zeros((5, 5), dtype=bool), make_grid(5, 5))
    assert "no valid pixel" in _refused(raster, 3)
    assert "no valid pixel" in _refused(raster, 3, auto_k=True)


def test_more_clusters_than_valid_pixels_is_refused():
    valid = np.zeros((6, 6), dtype=bool)
    valid[1, 1:6] = True
    raster = MemRaster(np.random.default_rng(0).normal(size=(3, 6, 6)), valid, make_grid(6, 6))
    message = _refused(raster, 8)
    assert "K=8" in message and "5 valid" in message


def test_fewer_different_vectors_than_k_is_refused():
    values = np.zeros((3, 10, 10))
    values[0] = 1.0
    values[1, :5] = 1.0  # two different directions only
    message = _refused(MemRaster(values, np.ones((10, 10), dtype=bool), make_grid(10, 10)), 3, backend="numpy")
    assert "K=3" in message and "2 different" in message


def test_k_out_of_range_and_small_sample_are_refused():
    raster = random_raster(10, 10, bands=3)
    assert "between 2 and 255" in _refused(raster, 1)
    assert "between 2 and 255" in _refused(raster, 256)
    assert "SAMPLE_SIZE" in _refused(raster, 20, sample_size=10)


def test_cancel_stops_sampling_and_fitting():
    raster = random_raster(40, 40, bands=3)
    with pytest.raises(Cancelled):
        fit_raster(raster, 3, is_cancelled=lambda: True)
    points = normalise(np.random.default_rng(0).normal(size=(500, 3)))
    with pytest.raises(Cancelled):
        kmeans_numpy(points, 3, is_cancelled=lambda: True)


def test_fit_and_assign_stay_within_a_few_blocks_of_memory(tmp_path):
    raster = SyntheticRaster()
    tracemalloc.start()
    try:
        model = fit_raster(raster, 6, sample_size=50_000, seed=0, backend="numpy")
        producer = ClusterRaster(raster, model)
        spec = OutputSpec(str(tmp_path / "classes.tif"), ("cluster",), gdal.GDT_Byte, 0)
        write_rasters(raster.grid, [spec], producer.produce)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block = 512 * 512 * 64 * 4
    assert peak < 4 * block, f"peak {peak / 2**20:.0f} MiB with blocks of {block / 2**20:.0f} MiB"
    assert producer.counts[1:].sum() > 0.8 * 2048 * 2048 and producer.counts[0] == 0
    written = gdal.Open(spec.path).ReadAsArray(700, 1500, 30, 30)
    data = raster.read(Window(700, 1500, 30, 30))
    np.testing.assert_array_equal(written, model.classes(data.values, data.valid))
