"""Unsupervised classes: k-means on L2-normalised embeddings, fitted on a block-wise sample, applied block by block.

Distance: every vector is L2-normalised first (a zero vector stays zero) and k-means minimises the squared
Euclidean distance between these unit vectors and the centroids; the same distance assigns every pixel to
its nearest centroid. Between unit vectors |a - b|^2 = 2 - 2 cos(a, b), so pixels are grouped by cosine
similarity, the measure of geoembed:similarity. AEF vectors are unit vectors already.

Fitting uses scikit-learn's MiniBatchKMeans when it is installed, else Lloyd's k-means in numpy (k-means++
seeding, several starts); both are deterministic for a given seed. Classes are numbered 1..k by decreasing
size in the sample, so the numbering does not depend on the algorithm's internal order.
"""

import numpy as np

from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.model import EmbeddingBlock
from .blas import matmul
from .classify import has_sklearn
from .pixel_sample import sample_pixels
from .regions import unit

SILHOUETTE_SAMPLE = 4000  # points scored per k by AUTO_K (the silhouette costs n^2 distances)
CHUNK = 65536  # pixels assigned at once (64 bands: 32 MiB of float64)
BACKENDS = ("auto", "sklearn", "numpy")


def normalise(vectors):
    """(n, dims) float64 unit rows; zero rows stay zero."""
    return unit(np.asarray(vectors, dtype=np.float64))


def nearest(points, centroids):
    """Index of the nearest centroid (squared Euclidean; the first one on ties) of each (n, dims) point."""
    points = np.asarray(points, dtype=np.float64)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, and |x|^2 is the same for every c
    scores = (centroids * centroids).sum(axis=1)[np.newaxis, :] - matmul(2.0 * points, centroids.T)
    return scores.argmin(axis=1)


def kmeans_numpy(points, k, seed=0, n_init=3, max_iter=100, tol=1e-4, is_cancelled=None):
    """(k, dims) centroids of Lloyd's k-means from k-means++ starts; the start with the lowest inertia wins.

    A start stops when no centroid moves, or when the centroids' squared shift falls to tol times the
    mean variance of the points (scikit-learn's rule), or after max_iter iterations.
    """
    points = np.asarray(points, dtype=np.float64)
    rng = np.random.default_rng(seed)
    tol = tol * float(points.var(axis=0).mean())
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        centroids = _kmeans_plus_plus(points, k, rng)
        for _ in range(max_iter):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            labels = nearest(points, centroids)
            moved = _means(points, labels, centroids)
            shift = ((moved - centroids) ** 2).sum()
            centroids = moved
            if shift <= tol:
                break
        inertia = _inertia(points, centroids)
        if inertia < best_inertia:
            best, best_inertia = centroids, inertia
    return best


def _kmeans_plus_plus(points, k, rng):
    """k-means++ seeding: each new centre drawn with probability proportional to the squared distance to the nearest one."""
    centres = [points[rng.integers(len(points))]]
    distances = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = distances.sum()
        index = rng.choice(len(points), p=distances / total) if total > 0 else rng.integers(len(points))
        centres.append(points[index])
        distances = np.minimum(distances, ((points - points[index]) ** 2).sum(axis=1))
    return np.array(centres)


def _means(points, labels, centroids):
    """New centroids: the mean of each cluster's points; an empty cluster takes the point farthest from its centroid."""
    k = len(centroids)
    counts = np.bincount(labels, minlength=k)
    sums = np.stack([np.bincount(labels, weights=column, minlength=k) for column in points.T], axis=1)
    moved = centroids.copy()
    filled = counts > 0
    moved[filled] = sums[filled] / counts[filled, np.newaxis]
    if not filled.all():
        distances = ((points - moved[labels]) ** 2).sum(axis=1)
        for cluster, index in zip(np.flatnonzero(~filled), np.argsort(-distances, kind="stable")):
            moved[cluster] = points[index]
    return moved


def _inertia(points, centroids):
    return float(((points - centroids[nearest(points, centroids)]) ** 2).sum())


def kmeans_sklearn(points, k, seed=0):
    """(k, dims) centroids of scikit-learn's MiniBatchKMeans (k-means++ starts, mini-batches of the sample)."""
    import warnings

    from sklearn.cluster import MiniBatchKMeans

    estimator = MiniBatchKMeans(
        n_clusters=k, init="k-means++", n_init=3, batch_size=min(len(points), 4096), max_iter=100, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few distinct points: handled by the caller, which checks them first
        estimator.fit(np.asarray(points, dtype=np.float64))
    return np.asarray(estimator.cluster_centers_, dtype=np.float64)


def fit_kmeans(points, k, seed=0, backend="auto", is_cancelled=None):
    """(k, dims) centroids of unit-vector points, numbered by decreasing cluster size in points (ties: by centroid)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown k-means backend {backend}")
    use_sklearn = backend == "sklearn" or (backend == "auto" and has_sklearn())
    centroids = kmeans_sklearn(points, k, seed) if use_sklearn else kmeans_numpy(points, k, seed, is_cancelled=is_cancelled)
    counts = np.bincount(nearest(points, centroids), minlength=k)
    order = np.lexsort(tuple(centroids.T[::-1]) + (-counts,))
    return centroids[order]


def silhouette(points, labels, chunk=512):
    """Mean silhouette coefficient (Euclidean); points alone in their cluster count 0, as in scikit-learn."""
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    ids, labels = np.unique(labels, return_inverse=True)
    if not 2 <= len(ids) <= len(points) - 1:
        raise ValueError("the silhouette needs 2 <= number of clusters <= number of points - 1")
    counts = np.bincount(labels)
    onehot = np.zeros((len(points), len(ids)))
    onehot[np.arange(len(points)), labels] = 1.0
    squares = (points * points).sum(axis=1)
    scores = np.zeros(len(points))
    for start in range(0, len(points), chunk):
        stop = min(start + chunk, len(points))
        d2 = squares[start:stop, np.newaxis] + squares[np.newaxis, :] - matmul(2.0 * points[start:stop], points.T)
        distances = np.sqrt(np.maximum(d2, 0.0))
        distances[np.arange(stop - start), np.arange(start, stop)] = 0.0
        sums = matmul(distances, onehot)  # (chunk, clusters)
        own = labels[start:stop]
        rows = np.arange(stop - start)
        alone = counts[own] == 1
        a = sums[rows, own] / np.maximum(counts[own] - 1, 1)
        means = sums / counts[np.newaxis, :]
        means[rows, own] = np.inf
        b = means.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (b - a) / np.maximum(a, b)
        scores[start:stop] = np.where(alone | ~np.isfinite(s), 0.0, s)
    return float(scores.mean())


class ClusterModel:
    """Centroids (k, dims) in unit-vector space, with the bands they apply to and how they were found."""

    def __init__(self, centroids, band_names, product, backend, seed, sample_size, scores=None):
        self.centroids = np.asarray(centroids, dtype=np.float64)
        self.band_names = tuple(band_names)
        self.product = product
        self.backend = backend
        self.seed = seed
        self.sample_size = sample_size
        self.scores = scores or {}

    @property
    def k(self):
        return len(self.centroids)

    def classes(self, values, valid):
        """(rows, cols) uint8 class 1..k of each valid pixel of (dims, rows, cols) values, 0 elsewhere."""
        out = np.zeros(valid.shape, dtype=np.uint8)
        vectors = values[:, valid]
        labels = np.empty(vectors.shape[1], dtype=np.uint8)
        for start in range(0, vectors.shape[1], CHUNK):
            chunk = vectors[:, start : start + CHUNK]
            labels[start : start + chunk.shape[1]] = nearest(normalise(chunk.T), self.centroids) + 1
        out[valid] = labels
        return out


class ClusterRaster:
    """Block producer of the class raster (write_rasters); counts the pixels of each class as it goes."""

    def __init__(self, raster, model):
        self.raster = raster
        self.model = model
        self.counts = np.zeros(model.k + 1, dtype=np.int64)

    def produce(self, window):
        block = self.raster.read(window)
        classes = self.model.classes(block.values, block.valid)
        self.counts += np.bincount(classes[block.valid], minlength=self.model.k + 1)
        return [EmbeddingBlock(classes, block.valid)]


def fit_raster(raster, k, auto_k=False, sample_size=50_000, seed=0, backend="auto", progress=None, is_cancelled=None):
    """ClusterModel fitted on a uniform block-wise sample of the valid pixels of raster.

    With auto_k, every k in 2..k is fitted and the one with the highest silhouette (on at most
    SILHOUETTE_SAMPLE sample points) is kept; the scores are in model.scores. progress covers the sampling.
    """
    if not 2 <= k <= 255:
        raise GeoEmbedError(f"K must be between 2 and 255, got {k}.")
    if sample_size < k:
        raise GeoEmbedError(f"SAMPLE_SIZE ({sample_size}) must be at least K ({k}).")
    samples, valid_count = sample_pixels(raster, sample_size, seed, progress=progress, is_cancelled=is_cancelled)
    if valid_count == 0:
        raise GeoEmbedError("INPUT has no valid pixel (all nodata); there is nothing to cluster.")
    if valid_count < (2 if auto_k else k):
        raise GeoEmbedError(f"K={k} but INPUT has only {valid_count} valid pixel(s); choose a smaller K.")
    points = normalise(samples)
    distinct = len(np.unique(points, axis=0))
    if distinct < (2 if auto_k else k):
        raise GeoEmbedError(f"K={k} but the sampled pixels hold only {distinct} different vector(s); choose a smaller K.")
    if not auto_k:
        centroids = fit_kmeans(points, k, seed, backend, is_cancelled)
        return ClusterModel(centroids, raster.band_names, _product(raster), _backend(backend), seed, len(points))
    scored = points[: min(SILHOUETTE_SAMPLE, len(points))]  # the sample is in random order already
    scores, fits = {}, {}
    for candidate in range(2, min(k, distinct) + 1):
        if is_cancelled and is_cancelled():
            raise Cancelled()
        fits[candidate] = fit_kmeans(points, candidate, seed, backend, is_cancelled)
        labels = nearest(scored, fits[candidate])
        found = len(np.unique(labels))
        scores[candidate] = silhouette(scored, labels) if 2 <= found <= len(scored) - 1 else -1.0
    best = max(scores, key=lambda c: (scores[c], -c))
    return ClusterModel(fits[best], raster.band_names, _product(raster), _backend(backend), seed, len(points), scores)


def _product(raster):
    return getattr(raster.provenance, "product", "unknown")


def _backend(backend):
    if backend == "auto":
        return "sklearn MiniBatchKMeans" if has_sklearn() else "numpy k-means"
    return "sklearn MiniBatchKMeans" if backend == "sklearn" else "numpy k-means"
