"""Fitted classifiers as plain numpy arrays: predict_proba rebuilt from the numbers, as scikit-learn computes it.

A saved GeoEmbed model holds only these arrays (analysis/model_file.py), so applying it needs neither pickle nor
scikit-learn, and a model fitted with one scikit-learn version predicts the same under another. Every predictor takes
(n, bands) features and gives (n, classes seen) float64 probabilities, columns in the order of `classes_`.

Each kind declares its arrays' layout (dtypes and shapes, from the header's counts) so model_file can check a file
before reading it, and checks the values themselves (indices in range, trees that are trees) when rebuilt.
"""

import numpy as np

from .blas import matmul

FLOATS = ("<f8", "<f4")
INTEGERS = ("<i8", "<i4")
CHUNK_BYTES = 32 * 2**20  # working memory of one kNN distance chunk
MAX_TREES = 10_000  # train fits 200; more would only make a crafted file slow to apply
MAX_NEIGHBOURS = 1_000  # train uses 5
ERROR_PER_BAND = 4 * 2.0**-24  # float32 error bound of a product term, generously (see NeighbourSearch._screen)
CHUNK_PIXELS = 4096  # pixels a block is predicted in at once (a few MiB of working arrays: they stay in cache)
LINEAR_CHUNK_PIXELS = 2**18  # a whole 512 x 512 block: linear scores need a few floats per pixel, and one product
ROUNDING32 = 2.0**-24  # unit roundoff of float32


class ModelDataError(ValueError):
    """The arrays or parameters of a saved model are not a valid predictor (worded for a one-line message)."""


def _softmax(scores):
    """Row-wise softmax, in scikit-learn's order of operations (utils.extmath.softmax)."""
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


def _products(features, rows):
    """features @ rows.T, for a few rows (classes): einsum's own loop, not BLAS, whose threads cost more than such a
    product on a busy machine (a 4096-pixel chunk: 0.2 ms, against up to 5 ms through a multi-threaded BLAS)."""
    dtype = np.result_type(features, rows)  # NumPy's promotion, as matmul's; einsum is slow on mixed types
    return np.einsum("nb,kb->nk", np.asarray(features, dtype=dtype), np.asarray(rows, dtype=dtype))


def _expit(values):
    return 1.0 / (1.0 + np.exp(-values))


class Predictor:
    """classes_ (sorted class indices the model saw) and predict/predict_proba on (n, bands) features."""

    kind = ""
    task = "classification"

    def __init__(self, classes):
        self.classes_ = np.asarray(classes, dtype=np.int64)

    def predict(self, features):
        return self.classes_[self.predict_proba(features).argmax(axis=1)]

    def predict_proba(self, features):
        raise NotImplementedError

    def best(self, features, valid=None):
        """(column of classes_ with the highest probability, that probability) for (n, bands) features. Where valid
        (n,) is False a row may hold NaN or anything: its results are meaningless (zeros are classified there)."""
        features = np.asarray(features)
        if valid is not None and not valid.all():
            features = np.where(valid, features.T, features.dtype.type(0)).T
        probabilities = self.predict_proba(features)
        best = probabilities.argmax(axis=1)
        return best, probabilities[np.arange(len(best)), best]

    def chunk_pixels(self, bands):
        """How many pixels to predict at once so the working arrays stay in the processor's caches."""
        return CHUNK_PIXELS

    def params(self):
        """The JSON-able numbers the header keeps for this predictor (counts that fix the arrays' shapes)."""
        return {"classes": len(self.classes_)}

    def arrays(self):
        return {"classes": self.classes_}

    @staticmethod
    def layout(params, bands):
        """{array name: (allowed dtypes, shape)} the file must hold, from the header's params."""
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        raise NotImplementedError


def _check_classes(classes, n_classes):
    if classes.size < 1 or (np.diff(classes) <= 0).any() or classes.min() < 0 or classes.max() >= n_classes:
        raise ModelDataError("its class indices are not increasing indices of its class names")


def _check_finite(name, values):
    if not np.isfinite(values).all():
        raise ModelDataError(f"its {name} hold NaN or infinite numbers")


def _inverse_distance(distance):
    """scikit-learn's weights="distance", in distance's dtype: 1/distance, except that a query at distance 0 of some
    training vectors weights only those, at 1."""
    with np.errstate(divide="ignore"):
        weight = 1.0 / distance
    exact = np.isinf(weight)
    rows = exact.any(axis=1)
    weight[rows] = exact[rows]
    return weight


def _first_highest(scores):
    """The row of each column's first highest score (as argmax, whose axis-0 form copies); scores (classes, n) become
    score - top in place."""
    scores -= scores.max(axis=0)
    best = np.zeros(scores.shape[1], dtype=np.intp)
    for column in range(len(scores) - 1, -1, -1):
        np.copyto(best, column, where=scores[column] == 0)
    return best


def _settled(exact_best, features, best, probability, near, valid):
    """(best, probability) of a float32 fast path, with invalid pixels at 0 and the near-ties it flagged decided by
    exact_best (Predictor.best: predict_proba's argmax)."""
    if valid is not None:
        best[~valid], probability[~valid] = 0, 0
        near &= valid
    rows = np.flatnonzero(near)
    if len(rows):
        best[rows], probability[rows] = exact_best(features[rows])
    return best, probability


class CentroidPredictor(Predictor):
    """Cosine nearest centroid: a softmax (sharpened x20) over the cosine to each class's unit centroid."""

    kind = "nearest_centroid"
    SHARPNESS = 20.0

    def __init__(self, classes, centroids):
        super().__init__(classes)
        self.centroids_ = np.asarray(centroids, dtype=np.float64)

    def predict_proba(self, features):
        features = np.asarray(features, dtype=np.float64)
        # the cosine: products with the unit centroids over the vector's norm (a zero vector scores 0 everywhere)
        norms = np.sqrt(np.einsum("nb,nb->n", features, features))[:, None]
        scores = np.divide(
            _products(features, self.centroids_), norms, where=norms > 0, out=np.zeros((len(features), len(self.centroids_)))
        )
        scores -= scores.max(axis=1, keepdims=True)
        scores *= self.SHARPNESS
        weights = np.exp(scores, out=scores)
        return weights / weights.sum(axis=1, keepdims=True)

    def best(self, features, valid=None):
        """Predictor.best, for float32 features and 2+ classes, from float32 products with the centroids: one product
        of the block's pixels, no float64 copy. The class is the highest product's (the cosine's, since |x| > 0 does
        not change the order); pixels whose second product is within twice the float32 error bound of it (near-ties,
        zero vectors, NaN) are decided by predict_proba, so the classes are predict_proba's argmax. The confidence
        1/sum(exp(20 (cos - top))) is predict_proba's within ~1e-6."""
        features = np.asarray(features)
        if len(self.centroids_) < 2 or features.dtype != np.float32 or not len(features):
            return super().best(features, valid)
        columns = features.T  # (bands, n): the block's pixel columns, as the product wants them
        centroids32 = self.centroids_.astype(np.float32)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # whatever invalid pixels hold
            scores = matmul(centroids32, columns)
            best = _first_highest(scores)
            # |float32 product - exact| <= (bands + 3) u |c| |x| with unit centroids: twice that for two products,
            # twice again for margin (as LinearPredictor)
            size = np.sqrt(np.einsum("bn,bn->n", columns, columns))  # float32: within 1e-5, what a bound needs
            bound = 4 * (len(centroids32[0]) + 3) * ROUNDING32 * size
            near = np.count_nonzero(scores >= -bound, axis=0) != 1
            scores *= self.SHARPNESS / size
            np.exp(scores, out=scores)
            probability = 1.0 / scores.sum(axis=0, dtype=np.float64)
        return _settled(super().best, features, best, probability, near, valid)

    def chunk_pixels(self, bands):
        return LINEAR_CHUNK_PIXELS

    def arrays(self):
        return {**super().arrays(), "centroids": self.centroids_}

    @staticmethod
    def layout(params, bands):
        classes = params["classes"]
        return {"classes": (INTEGERS, (classes,)), "centroids": (FLOATS, (classes, bands))}

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        _check_classes(arrays["classes"], n_classes)
        _check_finite("centroids", arrays["centroids"])
        return cls(arrays["classes"], arrays["centroids"])


class LinearPredictor(Predictor):
    """Logistic regression: scores X @ coef.T + intercept, then softmax ("softmax", scikit-learn's multinomial) or
    per-class logistic normalised over the classes ("ovr"; with one row of coefficients, the binary [1 - p, p])."""

    kind = "logistic_regression"
    LINKS = ("softmax", "ovr")

    def __init__(self, classes, coef, intercept, link):
        super().__init__(classes)
        # kept in the dtype fitted: scikit-learn >= 1.8 fits float32 features in float32 and predicts in float32
        self.coef_ = np.asarray(coef)
        self.intercept_ = np.asarray(intercept)
        self.link = link

    def predict_proba(self, features):
        scores = _products(np.asarray(features), self.coef_) + self.intercept_  # NumPy's promotion, as scikit-learn's
        if self.link == "softmax":
            if scores.shape[1] == 1:
                scores = np.concatenate([-scores, scores], axis=1)
            return _softmax(scores)
        probability = _expit(scores)
        if probability.shape[1] == 1:
            return np.concatenate([1 - probability, probability], axis=1)
        total = probability.sum(axis=1)
        zero = total == 0
        probability[zero] = 1.0  # every class at zero: uniform, as scikit-learn does
        total[zero] = probability.shape[1]
        return probability / total[:, None]

    def best(self, features, valid=None):
        """Predictor.best, for float32 features and the softmax of 3+ classes, from float32 scores: one product of the
        pixels with the coefficients, no float64 copy. The class is the highest score's; pixels whose second score is
        within twice the float32 error bound of it (near-ties, NaN) are decided by predict_proba, so the classes are
        predict_proba's argmax. The confidence 1/sum(exp(score - top)) is predict_proba's within ~1e-7."""
        features = np.asarray(features)
        if self.link != "softmax" or len(self.coef_) < 2 or features.dtype != np.float32 or not len(features):
            return super().best(features, valid)
        columns = features.T  # (bands, n): the block's pixel columns, as the product wants them
        coef32 = self.coef_.astype(np.float32)
        scores = matmul(coef32, columns)
        with np.errstate(invalid="ignore", over="ignore"):  # whatever invalid pixels hold (NaN, inf)
            best, probability, near = self._best_of_scores(scores, columns, coef32)
        return _settled(super().best, features, best, probability, near, valid)

    def _best_of_scores(self, scores, columns, coef32):
        """(first highest score's row, 1/sum(exp(score - top)), near: a second score within the error bound)."""
        scores += self.intercept_.astype(np.float32)[:, None]
        best = _first_highest(scores)
        # |float32 score - exact| <= (bands + 3) u (|coef row| |x| + |intercept|): twice that (today's float32
        # scores, where scikit-learn fits in float32, are as far on the other side) and twice again (two scores)
        size = np.sqrt(np.einsum("bn,bn->n", columns, columns))
        bound = 4 * (len(coef32[0]) + 3) * ROUNDING32
        bound *= np.sqrt(np.einsum("kb,kb->k", coef32, coef32, dtype=np.float64).max()) * size + np.abs(self.intercept_).max()
        near = np.count_nonzero(scores >= -bound, axis=0) != 1
        np.exp(scores, out=scores)
        return best, 1.0 / scores.sum(axis=0), near

    def chunk_pixels(self, bands):
        return LINEAR_CHUNK_PIXELS

    def params(self):
        return {**super().params(), "link": self.link, "rows": len(self.coef_)}

    def arrays(self):
        return {**super().arrays(), "coef": self.coef_, "intercept": self.intercept_}

    @staticmethod
    def layout(params, bands):
        rows = params["rows"]
        if params.get("link") not in LinearPredictor.LINKS:
            raise ModelDataError(f"its link is not one of {', '.join(LinearPredictor.LINKS)}")
        if rows != (1 if params["classes"] == 2 else params["classes"]):
            raise ModelDataError(f"it has {rows} rows of coefficients for {params['classes']} classes")
        return {
            "classes": (INTEGERS, (params["classes"],)),
            "coef": (FLOATS, (rows, bands)),
            "intercept": (FLOATS, (rows,)),
        }

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        _check_classes(arrays["classes"], n_classes)
        _check_finite("coefficients", arrays["coef"])
        _check_finite("intercepts", arrays["intercept"])
        return cls(arrays["classes"], arrays["coef"], arrays["intercept"], params["link"])


class NeighbourSearch:
    """The k nearest training vectors (Euclidean) of queries, as scikit-learn's brute search finds them: among equally
    distant candidates for the k-th place, the lower training index wins."""

    def __init__(self, vectors, k):
        self.vectors = np.asarray(vectors)
        self.k = int(k)
        vectors64 = self.vectors.astype(np.float64)
        self._minus_twice = np.ascontiguousarray(-2.0 * vectors64.T)
        self._minus_twice_rows = np.ascontiguousarray(self._minus_twice.T)  # gathered by candidate: rows contiguous
        self._norms = np.einsum("ij,ij->i", vectors64, vectors64)
        self._minus_twice32 = None  # made on the first search

    def chunks(self, features):
        """(start, float64 queries, root dtype) over features, in chunks of bounded working memory."""
        features = np.asarray(features)
        step = max(1, CHUNK_BYTES // (8 * max(1, len(self.vectors))))
        # both float32: scikit-learn takes the square root of the (float64) squared distance in float32
        root_dtype = np.float32 if features.dtype == np.float32 and self.vectors.dtype == np.float32 else np.float64
        for start in range(0, len(features), step):
            yield start, features[start : start + step].astype(np.float64), root_dtype

    def neighbours(self, queries, root_dtype):
        """(indices of the k nearest training vectors, nearest first; their distances, in root_dtype)."""
        neighbours = np.empty((len(queries), self.k), dtype=np.intp)
        partial = np.empty((len(queries), self.k), dtype=np.float64)
        screened = self._screen(queries)
        if screened is not None:
            rows, candidates = screened
            neighbours[rows], partial[rows] = self._in_order(candidates, self._exact(queries[rows], candidates))
            rest = np.ones(len(queries), dtype=bool)
            rest[rows] = False
        else:
            rest = slice(None)
        if screened is None or rest.any():
            # squared distance = |q|^2 - 2 q.v + |v|^2 (scikit-learn's decomposition); |q|^2 does not change the
            # ranking, so it is added to the k chosen only
            full = matmul(queries[rest], self._minus_twice)
            full += self._norms
            neighbours[rest] = self._nearest(full)
            partial[rest] = np.take_along_axis(full, neighbours[rest], axis=1)
        squared = np.einsum("ij,ij->i", queries, queries)[:, None] + partial
        return neighbours, np.sqrt(np.maximum(squared, 0.0).astype(root_dtype))

    def _screen(self, queries):
        """(rows, their k nearest, nearest first in float32) for the rows whose k nearest are certain: the next vector
        is farther, in float32, than the k-th by more than twice the float32 error bound. The other rows (ties,
        near-ties) are searched in float64. None: no screening (too few training vectors)."""
        k = self.k
        if k >= len(self.vectors) or not np.isfinite(queries).all():
            return None
        if self._minus_twice32 is None:
            self._minus_twice32 = self._minus_twice.astype(np.float32)
            self._norms32 = self._norms.astype(np.float32)
            self._largest = float(np.sqrt(self._norms.max()))
        rough = matmul(queries.astype(np.float32), self._minus_twice32)
        rough += self._norms32
        # the k + 1 nearest, nearest first, one row minimum at a time: each a fast pass over contiguous rows (a
        # partition of every row costs several times more)
        flat = rough.reshape(-1)
        offsets = np.arange(len(rough)) * rough.shape[1]
        candidates = np.empty((len(rough), k), dtype=np.intp)
        values = np.empty((len(rough), k + 1), dtype=np.float32)
        for place in range(k + 1):
            nearest = rough.argmin(axis=1)
            at = offsets + nearest
            values[:, place] = flat.take(at)
            if place < k:
                candidates[:, place] = nearest
                flat.put(at, np.inf)
        # float32 error of -2 q.v + |v|^2 over b bands: below (2b + 6) 2^-24 (|q| |v| + |v|^2), within 4b 2^-24 (...)
        size = np.sqrt(np.einsum("ij,ij->i", queries, queries))
        bound = ERROR_PER_BAND * queries.shape[1] * (size * self._largest + self._largest**2)
        rows = np.flatnonzero(values[:, k] > values[:, k - 1] + 2 * bound)
        return rows, candidates[rows]

    def _exact(self, queries, candidates):
        """-2 q.v + |v|^2 in float64 for each query and its candidates, one candidate column at a time."""
        exact = np.empty(candidates.shape, dtype=np.float64)
        for column in range(candidates.shape[1]):
            chosen = candidates[:, column]
            exact[:, column] = np.einsum("ib,ib->i", queries, self._minus_twice_rows.take(chosen, axis=0))
            exact[:, column] += self._norms.take(chosen)
        return exact

    def _in_order(self, candidates, exact):
        """(candidates, exact) nearest first, ties to the lower index: rows whose float32 order is strictly the float64
        one stay as they are, the others are sorted."""
        unsorted = np.flatnonzero((np.diff(exact, axis=1) <= 0).any(axis=1))
        if len(unsorted):
            by_index = np.sort(candidates[unsorted], axis=1)
            order = np.argsort(candidates[unsorted], axis=1, kind="stable")
            values = np.take_along_axis(exact[unsorted], order, axis=1)
            nearest = self._nearest(values)
            candidates, exact = candidates.copy(), exact.copy()
            candidates[unsorted] = np.take_along_axis(by_index, nearest, axis=1)
            exact[unsorted] = np.take_along_axis(values, nearest, axis=1)
        return candidates, exact

    def _nearest(self, squared):
        """Indices of the k smallest per row, nearest first; ties broken by the lower index."""
        k = self.k
        if k >= squared.shape[1]:
            return np.argsort(squared, axis=1, kind="stable")
        candidates = np.argpartition(squared, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(squared, candidates, axis=1).max(axis=1)
        # rows where the k-th distance is shared beyond the k chosen: argpartition picked among them arbitrarily
        ambiguous = np.flatnonzero((squared <= kth[:, None]).sum(axis=1) > k)
        for row in ambiguous:
            candidates[row] = np.argsort(squared[row], kind="stable")[:k]
        order = np.argsort(np.take_along_axis(squared, candidates, axis=1), axis=1, kind="stable")
        return np.take_along_axis(candidates, order, axis=1)

    @staticmethod
    def check(params):
        samples = params["samples"]
        if not 1 <= params["k"] <= min(samples, MAX_NEIGHBOURS):
            raise ModelDataError(f"it asks for {params['k']} neighbours among {samples} training vectors")


class NeighboursPredictor(Predictor):
    """k nearest neighbours (NeighbourSearch), votes weighted by 1/distance (a query at distance 0 of some training
    vectors takes only their votes), as scikit-learn's weights="distance" (what train fits)."""

    kind = "knn"
    WEIGHTS = ("distance",)

    def __init__(self, classes, vectors, labels, k, weights):
        super().__init__(classes)
        self.search = NeighbourSearch(vectors, k)
        self.vectors = self.search.vectors
        self.labels = np.asarray(labels, dtype=np.intp)  # column of classes_ of each training vector
        self.k = int(k)
        self.weights = weights

    def predict_proba(self, features):
        features = np.asarray(features)
        out = np.empty((len(features), len(self.classes_)), dtype=np.float64)
        for start, queries, root_dtype in self.search.chunks(features):
            out[start : start + len(queries)] = self._proba(queries, root_dtype)
        return out

    def _proba(self, queries, root_dtype):
        neighbours, distance = self.search.neighbours(queries, root_dtype)
        weight = _inverse_distance(distance.astype(np.float64))
        votes = np.zeros((len(queries), len(self.classes_)), dtype=np.float64)
        all_rows = np.arange(len(queries))
        for column in range(self.k):  # neighbour by neighbour, nearest first, as scikit-learn adds them
            votes[all_rows, self.labels[neighbours[:, column]]] += weight[:, column]
        return votes / votes.sum(axis=1, keepdims=True)

    def params(self):
        return {**super().params(), "k": self.k, "weights": self.weights, "samples": len(self.vectors)}

    def arrays(self):
        return {**super().arrays(), "vectors": self.vectors, "labels": self.labels.astype(np.int64)}

    @staticmethod
    def layout(params, bands):
        samples = params["samples"]
        if params.get("weights") not in NeighboursPredictor.WEIGHTS:
            raise ModelDataError(f"its weights are not one of {', '.join(NeighboursPredictor.WEIGHTS)}")
        NeighbourSearch.check(params)
        return {
            "classes": (INTEGERS, (params["classes"],)),
            "vectors": (FLOATS, (samples, bands)),
            "labels": (INTEGERS, (samples,)),
        }

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        classes, labels = arrays["classes"], arrays["labels"]
        _check_classes(classes, n_classes)
        _check_finite("training vectors", arrays["vectors"])
        if labels.min() < 0 or labels.max() >= len(classes):
            raise ModelDataError("its training labels are not indices of its classes")
        return cls(classes, arrays["vectors"], labels, params["k"], params["weights"])


class Trees:
    """Decision trees as concatenated node arrays, and the leaf each sample reaches in each.

    Tree t owns nodes starts[t]..starts[t+1]-1 and its children indices are local to it (-1 for a leaf). A sample goes
    left when its feature (as float32, as scikit-learn casts it) is <= the threshold. Leaves are numbered in node
    order: the row of a leaf in the forest's leaf values.

    Prediction walks all trees at once, one depth level per step, over a chunk of samples (_Levels).
    """

    def __init__(self, starts, left, right, feature, threshold):
        self.starts = np.asarray(starts, dtype=np.int64)
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self._levels = None

    @property
    def count(self):
        return len(self.starts) - 1

    def chunk_pixels(self):
        """Samples predicted at once: a few walk steps (walk_step), so that every step but a block's last is whole."""
        return max(16, 4 * self.walk_step())

    def walk_step(self):
        """Samples walked at once through every tree: about WALKS (sample, tree) walks."""
        return max(1, WALKS // self.count)

    def leaf_sum(self, features, leaf_value):
        """Sum over the trees, tree by tree in order (as scikit-learn sums them), of leaf_value's row at the leaf
        each sample reaches: float64 of shape (n,) + leaf_value.shape[1:]."""
        if self._levels is None:
            self._levels = _Levels(self)
        features = np.asarray(features)
        total = np.zeros((len(features), *leaf_value.shape[1:]), dtype=np.float64)
        step = self.walk_step()
        for first in range(0, len(features), step):
            rows = self._levels.leaf_rows(features[first : first + step])
            total[first : first + step] = leaf_value.take(rows, axis=0).sum(axis=1)
        return total

    def params(self):
        return {"trees": self.count, "nodes": len(self.left)}

    def arrays(self):
        return {
            "starts": self.starts,
            "left": self.left,
            "right": self.right,
            "feature": self.feature,
            "threshold": self.threshold,
        }

    @staticmethod
    def layout(params):
        trees, nodes, leaves = params["trees"], params["nodes"], params["leaves"]
        if not 1 <= trees <= min(nodes, MAX_TREES) or not trees <= leaves <= nodes:
            raise ModelDataError(f"it has {trees} trees for {nodes} nodes and {leaves} leaves")
        return {
            "starts": (INTEGERS, (trees + 1,)),
            "left": (INTEGERS, (nodes,)),
            "right": (INTEGERS, (nodes,)),
            "feature": (INTEGERS, (nodes,)),
            "threshold": (FLOATS, (nodes,)),
        }

    @classmethod
    def from_arrays(cls, arrays, params, bands):
        starts = arrays["starts"].astype(np.int64)
        nodes = params["nodes"]
        if starts[0] != 0 or starts[-1] != nodes or (np.diff(starts) < 1).any():
            raise ModelDataError("its tree starts do not split its nodes into trees")
        left, right = arrays["left"].astype(np.int64), arrays["right"].astype(np.int64)
        _check_tree_links(starts, left, right)
        inner = left >= 0
        if np.count_nonzero(~inner) != params["leaves"]:
            raise ModelDataError("its number of leaf values is not its number of leaves")
        feature = arrays["feature"]
        if (feature[inner] < 0).any() or (feature[inner] >= bands).any():
            raise ModelDataError(f"a tree splits on a band outside 0..{bands - 1}")
        _check_finite("thresholds", arrays["threshold"][inner])
        # leaves' feature and threshold are never read; zero them so no stray number is kept
        feature = np.where(inner, feature, 0)
        threshold = np.where(inner, arrays["threshold"], 0.0)
        return cls(starts, left, right, feature, threshold)


class _Levels:
    """A forest laid out for walking all its trees at once, one level per step, with a few whole-array operations.

    Nodes are renumbered so that an inner node's two children are adjacent (first[node], first[node] + 1) and a leaf
    is its own only child (limit +inf: it is never left). Each step, for every (sample, tree): x = the sample's value
    of the node's feature, node = first[node] + (x > limit[node]). After as many steps as the deepest leaf, every
    walk is at its leaf. limit is the largest float32 <= the float64 threshold, so comparing the float32 feature with
    it decides as scikit-learn's float32 <= float64 comparison, without converting the features to float64.
    """

    def __init__(self, trees):
        nodes = len(trees.left)
        offset = np.repeat(trees.starts[:-1], np.diff(trees.starts))
        inner = trees.left >= 0
        left = np.where(inner, trees.left + offset, -1)
        right = np.where(inner, trees.right + offset, -1)
        renumbered = np.empty(nodes, dtype=np.intp)
        first_child = np.empty(nodes, dtype=np.intp)  # in the new numbering, indexed by the old one
        frontier = trees.starts[:-1]
        renumbered[frontier] = np.arange(len(frontier))
        assigned, depth = len(frontier), 0
        while True:
            parents = frontier[inner[frontier]]
            first_child[frontier] = renumbered[frontier]  # leaves: themselves
            if not len(parents):
                break
            children = np.stack([left[parents], right[parents]], axis=1).ravel()
            renumbered[children] = assigned + np.arange(len(children))
            first_child[parents] = renumbered[children[0::2]]
            assigned += len(children)
            frontier, depth = children, depth + 1
        self.depth = depth
        self.first = np.empty(nodes, dtype=np.intp)
        self.first[renumbered] = first_child
        self.feature = np.zeros(nodes, dtype=np.intp)
        self.feature[renumbered] = np.where(inner, trees.feature, 0)
        limit = trees.threshold.astype(np.float32)
        limit = np.where(limit > trees.threshold, np.nextafter(limit, np.float32(-np.inf)), limit)
        self.limit = np.empty(nodes, dtype=np.float32)
        self.limit[renumbered] = np.where(inner, limit, np.float32(np.inf))
        self.leaf_row = np.zeros(nodes, dtype=np.intp)
        self.leaf_row[renumbered[~inner]] = np.arange(np.count_nonzero(~inner))
        self.is_leaf = np.zeros(nodes, dtype=bool)
        self.is_leaf[renumbered[~inner]] = True
        self.roots = np.arange(len(trees.starts) - 1, dtype=np.intp)
        self._scaled = (0, None)

    def leaf_rows(self, features):
        """(samples, trees) leaf row each sample reaches in each tree, for (samples, bands) features."""
        columns = np.asarray(features, dtype=np.float32).T  # a block's pixel columns come back contiguous here
        if not columns.flags.c_contiguous:
            columns = np.ascontiguousarray(columns)
        flat = columns.ravel()
        samples, trees = columns.shape[1], len(self.roots)
        if self._scaled[0] != samples:  # feature -> offset of its row in the (bands, samples) columns
            self._scaled = (samples, self.feature * samples)
        scaled = self._scaled[1]
        count = samples * trees
        reached = np.empty(count, dtype=np.intp)
        walk = np.arange(count)  # walk w: sample w // trees in tree w % trees
        node = np.tile(self.roots, samples)
        sample = np.repeat(np.arange(samples), trees)
        # working arrays written in place (out=): no allocation per level; the first `going` entries are live
        at, value, limit = np.empty(count, dtype=np.intp), np.empty(count, dtype=np.float32), np.empty(count, dtype=np.float32)
        right = np.empty(count, dtype=bool)
        going = count
        for level in range(self.depth):
            if level % COMPACT_EVERY == COMPACT_EVERY - 1:  # set the walks at their leaves aside
                done = self.is_leaf.take(node[:going])
                reached[walk[:going][done]] = node[:going][done]
                kept = np.flatnonzero(~done)
                walk[: len(kept)], node[: len(kept)], sample[: len(kept)] = (
                    walk[:going].take(kept),
                    node[:going].take(kept),
                    sample[:going].take(kept),
                )
                going = len(kept)
                if not going:
                    break
            # every index is in range by construction (from_arrays checks the trees, and a feature's row offset plus
            # the sample lies inside the columns): mode="wrap" skips numpy's bounds checks and its copy for out=
            live = node[:going]
            np.take(scaled, live, out=at[:going], mode="wrap")
            np.add(at[:going], sample[:going], out=at[:going])
            np.take(flat, at[:going], out=value[:going], mode="wrap")
            np.take(self.limit, live, out=limit[:going], mode="wrap")
            np.greater(value[:going], limit[:going], out=right[:going])
            np.take(self.first, live, out=live, mode="wrap")
            np.add(live, right[:going], out=live, casting="unsafe")
        reached[walk[:going]] = node[:going]
        return self.leaf_row.take(reached).reshape(samples, trees)


COMPACT_EVERY = 3  # levels between setting finished walks aside (each costs a few passes over the walks)
WALKS = 2**16  # (sample, tree) walks per step: their working arrays (about 2.5 MiB) stay in the processor's caches


class ForestPredictor(Predictor):
    """Random forest: the mean over trees (Trees) of the class fractions at the leaf each sample reaches.

    leaf_value holds one row per leaf, in node order, of class fractions (each leaf normalised, as scikit-learn's
    tree predict_proba does); inner nodes have no values (they are never read).
    """

    kind = "random_forest"

    def __init__(self, classes, starts, left, right, feature, threshold, leaf_value):
        super().__init__(classes)
        self.trees = Trees(starts, left, right, feature, threshold)
        self.leaf_value = np.asarray(leaf_value, dtype=np.float64)

    def predict_proba(self, features):
        total = self.trees.leaf_sum(features, self.leaf_value)
        total /= self.trees.count
        return total

    def chunk_pixels(self, bands):
        return self.trees.chunk_pixels()

    def params(self):
        return {**super().params(), **self.trees.params(), "leaves": len(self.leaf_value)}

    def arrays(self):
        return {**super().arrays(), **self.trees.arrays(), "leaf_value": self.leaf_value}

    @staticmethod
    def layout(params, bands):
        return {
            "classes": (INTEGERS, (params["classes"],)),
            **Trees.layout(params),
            "leaf_value": (FLOATS, (params["leaves"], params["classes"])),
        }

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        _check_classes(arrays["classes"], n_classes)
        trees = Trees.from_arrays(arrays, params, bands)
        leaf_value = arrays["leaf_value"]
        _check_finite("leaf values", leaf_value)
        if (leaf_value < 0).any():
            raise ModelDataError("its leaf values are negative")
        return cls(arrays["classes"], trees.starts, trees.left, trees.right, trees.feature, trees.threshold, leaf_value)


class BoostedTreesPredictor(Predictor):
    """Gradient boosting (scikit-learn's GradientBoostingClassifier): a softmax over the classes' raw scores, each the
    class's initial score (baseline) plus the values of the leaves a sample reaches in that class's trees (Trees).

    leaf_value holds one row per leaf, in node order: the tree's value times the learning rate in its class's column,
    zeros in the others. A binary model has one tree per round, for the second class, whose logistic sigmoid(z) is the
    softmax of [0, z]: its first column and baseline are zeros.

    Prediction walks each class's trees apart (as Trees of their own, with one value per leaf): summing a (samples,
    trees) array of values costs a class count times less than the (samples, trees, classes) one of all trees at once.
    """

    kind = "gradient_boosting"

    def __init__(self, classes, starts, left, right, feature, threshold, leaf_value, baseline):
        super().__init__(classes)
        self.trees = Trees(starts, left, right, feature, threshold)
        self.leaf_value = np.asarray(leaf_value, dtype=np.float64)
        self.baseline = np.asarray(baseline, dtype=np.float64)
        self._classes_trees = _trees_by_column(self.trees, self.leaf_value)

    def predict_proba(self, features):
        scores = np.zeros((len(features), self.leaf_value.shape[1]))
        for column, trees, values in self._classes_trees:
            scores[:, column] = trees.leaf_sum(features, values)
        scores += self.baseline
        return _softmax(scores)

    def chunk_pixels(self, bands):
        return min(trees.chunk_pixels() for _, trees, _ in self._classes_trees)

    def params(self):
        return {**super().params(), **self.trees.params(), "leaves": len(self.leaf_value)}

    def arrays(self):
        return {**super().arrays(), **self.trees.arrays(), "leaf_value": self.leaf_value, "baseline": self.baseline}

    @staticmethod
    def layout(params, bands):
        classes = params["classes"]
        return {
            "classes": (INTEGERS, (classes,)),
            **Trees.layout(params),
            "leaf_value": (FLOATS, (params["leaves"], classes)),
            "baseline": (FLOATS, (classes,)),
        }

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes):
        _check_classes(arrays["classes"], n_classes)
        trees = Trees.from_arrays(arrays, params, bands)
        leaf_value, baseline = arrays["leaf_value"], arrays["baseline"]
        _check_finite("leaf values", leaf_value)
        _check_finite("initial scores", baseline)
        # the largest score a sample can reach must be a number: no sum of leaf values overflows to inf (then NaN)
        leaf_tree = np.repeat(np.arange(trees.count), np.diff(trees.starts))[trees.left < 0]
        largest = np.zeros(trees.count)
        np.maximum.at(largest, leaf_tree, np.abs(leaf_value).max(axis=1))
        with np.errstate(over="ignore"):
            if not np.isfinite(largest.sum() + np.abs(baseline).max()):
                raise ModelDataError("its leaf values are too large to add up")
        return cls(arrays["classes"], trees.starts, trees.left, trees.right, trees.feature, trees.threshold, leaf_value, baseline)


def _trees_by_column(trees, leaf_value):
    """[(column, Trees of the trees scoring it, their leaves' values)] of boosted trees, each tree's values in one
    column of leaf_value (a tree of zeros scores the first); the trees keep their order."""
    owner = np.repeat(np.arange(trees.count), np.diff(trees.starts))
    leaf = trees.left < 0
    leaf_tree = owner[leaf]
    scored = np.zeros((trees.count, leaf_value.shape[1]), dtype=np.int64)
    np.add.at(scored, leaf_tree, leaf_value != 0)
    if (np.count_nonzero(scored, axis=1) > 1).any():
        raise ModelDataError("a tree of its gradient boosting scores more than one class")
    column = scored.argmax(axis=1)
    groups = []
    for chosen_column in np.unique(column):
        chosen = column == chosen_column
        nodes = chosen[owner]
        starts = np.concatenate([[0], np.cumsum(np.diff(trees.starts)[chosen])])
        part = Trees(starts, trees.left[nodes], trees.right[nodes], trees.feature[nodes], trees.threshold[nodes])
        groups.append((int(chosen_column), part, leaf_value[chosen[leaf_tree], chosen_column]))
    return groups


def _check_tree_links(starts, left, right):
    """Each tree is a tree: a node is a leaf (both children -1) or has two children inside its tree, after it (so
    every descent ends), and every node but the root is the child of exactly one node."""
    sizes = np.diff(starts)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    local = np.arange(len(left)) - starts[:-1][owner]
    leaf = (left == -1) & (right == -1)
    inner = ~leaf
    size = sizes[owner]
    for children in (left, right):
        if ((children[inner] <= local[inner]) | (children[inner] >= size[inner])).any():
            raise ModelDataError("a tree node points outside its tree or back up it")
    if ((left < -1) | (right < -1) | ((left == -1) != (right == -1))).any():
        raise ModelDataError("a tree node has a single child")
    targets = np.concatenate([left[inner], right[inner]]) + np.concatenate([starts[:-1][owner[inner]]] * 2)
    parents = np.bincount(targets, minlength=len(left))
    roots = np.zeros(len(left), dtype=bool)
    roots[starts[:-1]] = True
    if (parents[roots] != 0).any() or (parents[~roots] != 1).any():
        raise ModelDataError("a tree node has no parent or several")


# --- regressors (geoembed:regress): predict() gives one float64 value per sample -----------------------------------


class Regressor:
    """A fitted regressor: predict((n, bands) features) -> (n,) float64, as scikit-learn's predict."""

    kind = ""
    task = "regression"

    def predict(self, features):
        raise NotImplementedError

    def params(self):
        return {}

    def arrays(self):
        return {}

    @staticmethod
    def layout(params, bands):
        raise NotImplementedError

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes=None):
        raise NotImplementedError


class RidgeRegressor(Regressor):
    """Ridge regression: X @ coef + intercept, on the features as given (no standardisation is fitted)."""

    kind = "ridge"

    def __init__(self, coef, intercept):
        # kept in the dtypes fitted, intercept 0-d: NumPy promotes X @ coef + intercept as scikit-learn's predict
        self.coef_ = np.asarray(coef)
        self.intercept_ = np.asarray(intercept)

    def predict(self, features):
        return (np.asarray(features) @ self.coef_ + self.intercept_).astype(np.float64)

    def arrays(self):
        return {"coef": self.coef_, "intercept": self.intercept_}

    @staticmethod
    def layout(params, bands):
        return {"coef": (FLOATS, (bands,)), "intercept": (FLOATS, ())}

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes=None):
        _check_finite("coefficients", arrays["coef"])
        _check_finite("intercept", arrays["intercept"])
        return cls(arrays["coef"], arrays["intercept"])


class NeighboursRegressor(Regressor):
    """k nearest neighbours (NeighbourSearch): the mean of their targets weighted by 1/distance (a query at distance
    0 of some training vectors takes the mean of theirs), as scikit-learn's KNeighborsRegressor(weights="distance")."""

    kind = "knn_regression"
    WEIGHTS = ("distance",)

    def __init__(self, vectors, targets, k, weights):
        self.search = NeighbourSearch(vectors, k)
        self.vectors = self.search.vectors
        self.targets = np.asarray(targets, dtype=np.float64)
        self.k = int(k)
        self.weights = weights

    def predict(self, features):
        features = np.asarray(features)
        out = np.empty(len(features), dtype=np.float64)
        for start, queries, root_dtype in self.search.chunks(features):
            neighbours, distance = self.search.neighbours(queries, root_dtype)
            weight = _inverse_distance(distance.astype(np.float64))  # float64: as scikit-learn 1.9 weighs (1.2 within 1e-7)
            out[start : start + len(queries)] = np.sum(self.targets[neighbours] * weight, axis=1) / np.sum(weight, axis=1)
        return out

    def params(self):
        return {"k": self.k, "weights": self.weights, "samples": len(self.vectors)}

    def arrays(self):
        return {"vectors": self.vectors, "targets": self.targets}

    @staticmethod
    def layout(params, bands):
        if params.get("weights") not in NeighboursRegressor.WEIGHTS:
            raise ModelDataError(f"its weights are not one of {', '.join(NeighboursRegressor.WEIGHTS)}")
        NeighbourSearch.check(params)
        samples = params["samples"]
        return {"vectors": (FLOATS, (samples, bands)), "targets": (FLOATS, (samples,))}

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes=None):
        _check_finite("training vectors", arrays["vectors"])
        _check_finite("training targets", arrays["targets"])
        return cls(arrays["vectors"], arrays["targets"], params["k"], params["weights"])


class ForestRegressor(Regressor):
    """Random forest regression: the mean over trees (Trees) of the value (the mean target) at the leaf each sample
    reaches; leaf_value holds one value per leaf, in node order."""

    kind = "random_forest_regression"

    def __init__(self, starts, left, right, feature, threshold, leaf_value):
        self.trees = Trees(starts, left, right, feature, threshold)
        self.leaf_value = np.asarray(leaf_value, dtype=np.float64)

    def predict(self, features):
        total = self.trees.leaf_sum(features, self.leaf_value)
        total /= self.trees.count
        return total

    def params(self):
        return {**self.trees.params(), "leaves": len(self.leaf_value)}

    def arrays(self):
        return {**self.trees.arrays(), "leaf_value": self.leaf_value}

    @staticmethod
    def layout(params, bands):
        return {**Trees.layout(params), "leaf_value": (FLOATS, (params["leaves"],))}

    @classmethod
    def from_arrays(cls, arrays, params, bands, n_classes=None):
        trees = Trees.from_arrays(arrays, params, bands)
        _check_finite("leaf values", arrays["leaf_value"])
        return cls(trees.starts, trees.left, trees.right, trees.feature, trees.threshold, arrays["leaf_value"])


KINDS = {
    cls.kind: cls
    for cls in (
        CentroidPredictor,
        LinearPredictor,
        NeighboursPredictor,
        ForestPredictor,
        BoostedTreesPredictor,
        RidgeRegressor,
        NeighboursRegressor,
        ForestRegressor,
    )
}


def from_estimator(estimator):
    """The numpy predictor of a fitted classifier (GeoEmbed's NearestCentroid or the scikit-learn models train fits),
    read through public fitted attributes without importing scikit-learn."""
    if isinstance(estimator, Predictor):
        return estimator
    name = type(estimator).__name__
    classes = np.asarray(estimator.classes_)
    if hasattr(estimator, "centroids_"):
        return CentroidPredictor(classes, estimator.centroids_)
    if name == "LogisticRegression":
        return LinearPredictor(classes, estimator.coef_, estimator.intercept_, _logistic_link(estimator, len(classes)))
    if name == "KNeighborsClassifier":
        return _neighbours(estimator, classes)
    if name == "RandomForestClassifier":
        return _forest(estimator, classes)
    if name == "GradientBoostingClassifier":
        return _boosting(estimator, classes)
    raise ModelDataError(f"a {name} cannot be saved as a GeoEmbed model")


def _logistic_link(estimator, n_classes):
    """How predict_proba turns scores into probabilities: scikit-learn < 1.7 took multi_class ('auto' is
    multinomial unless binary or liblinear); later versions always use softmax for 3+ classes and the binary
    logistic for 2."""
    multi_class = getattr(estimator, "multi_class", "auto")
    if multi_class == "deprecated":
        multi_class = "auto"
    if multi_class in ("ovr", "warn"):
        return "ovr"
    if multi_class == "auto" and (n_classes <= 2 or getattr(estimator, "solver", "lbfgs") == "liblinear"):
        return "ovr"
    return "softmax"


def _check_euclidean_distance_weights(estimator):
    metric = estimator.effective_metric_
    params = estimator.effective_metric_params_ or {}
    euclidean = metric == "euclidean" or (metric == "minkowski" and params.get("p", 2) == 2)
    if not euclidean or estimator.weights != "distance":
        raise ModelDataError("only Euclidean kNN with distance weights can be saved")


def _neighbours(estimator, classes):
    _check_euclidean_distance_weights(estimator)
    labels = np.asarray(estimator._y)  # noqa: SLF001 - scikit-learn keeps the encoded training labels only here
    if labels.ndim != 1:
        raise ModelDataError("multi-output kNN cannot be saved")
    vectors = np.asarray(estimator._fit_X)  # noqa: SLF001 - the training vectors, as scikit-learn validated them
    return NeighboursPredictor(classes, vectors, labels, estimator.n_neighbors, estimator.weights)


def _forest(estimator, classes):
    def fractions(value):
        value = value[:, 0, : len(classes)]
        total = value.sum(axis=1, keepdims=True)
        total[total == 0.0] = 1.0
        # scikit-learn < 1.4 keeps weighted counts, later versions fractions: normalise either way
        return value / total

    return ForestPredictor(classes, *_tree_arrays(estimator, fractions))


def _boosting(estimator, classes):
    """A fitted GradientBoostingClassifier as a BoostedTreesPredictor: estimators_ is (rounds, trees per round) of
    regression trees, tree k of a round scoring class k (one tree per round, the second class's, when binary)."""
    rounds = np.asarray(estimator.estimators_)
    per_round = rounds.shape[1]
    if per_round != (1 if len(classes) == 2 else len(classes)):
        raise ModelDataError(f"its {per_round} trees per round do not score {len(classes)} classes")
    rate = float(estimator.learning_rate)
    starts, left, right, feature, threshold, values = _tree_arrays(
        _Members(rounds.ravel()),
        lambda value: rate * value[:, 0, 0],  # as scikit-learn scales each tree's value
    )
    leaf_tree = np.repeat(np.arange(rounds.size), np.diff(starts))[left < 0]
    leaf_value = np.zeros((len(values), len(classes)))
    leaf_value[np.arange(len(values)), leaf_tree % per_round + (1 if per_round == 1 else 0)] = values
    baseline = _initial_scores(estimator, classes)
    return BoostedTreesPredictor(classes, starts, left, right, feature, threshold, leaf_value, baseline)


class _Members:
    """The trees of a boosted model in the order scikit-learn adds them, as _tree_arrays reads a forest's."""

    def __init__(self, estimators):
        self.estimators_ = estimators


def _initial_scores(estimator, classes):
    """The raw score scikit-learn starts every sample from: the log of the class prior (clipped to float32's eps, as
    scikit-learn does; >= 1.4 subtracts the mean of the logs, which the softmax ignores), for two classes [0, its
    log-odds]; zeros for init="zero"."""
    init = estimator.init_
    if isinstance(init, str) and init == "zero":
        return np.zeros(len(classes))
    if type(init).__name__ != "DummyClassifier" or init.strategy != "prior":
        raise ModelDataError("only gradient boosting started from the class prior can be saved")
    eps = np.finfo(np.float32).eps
    prior = np.clip(np.asarray(init.class_prior_, dtype=np.float64), eps, 1 - eps)
    if len(classes) == 2:
        return np.array([0.0, np.log(prior[1] / (1 - prior[1]))])
    return np.log(prior)


def _tree_arrays(estimator, leaf_values):
    """(starts, left, right, feature, threshold, leaf values) of a fitted scikit-learn forest, its trees' nodes
    concatenated; leaf_values turns a tree's (leaves, outputs, values) float64 value array into what is kept."""
    starts, lefts, rights, features, thresholds, values = [0], [], [], [], [], []
    for tree in (member.tree_ for member in estimator.estimators_):
        if tree.n_outputs != 1:
            raise ModelDataError("multi-output forests cannot be saved")
        left = np.asarray(tree.children_left, dtype=np.int64)
        leaf = left < 0
        values.append(leaf_values(np.asarray(tree.value, dtype=np.float64)[leaf]))
        lefts.append(left)
        rights.append(np.asarray(tree.children_right, dtype=np.int64))
        features.append(np.where(leaf, 0, tree.feature))  # scikit-learn marks leaves with feature -2
        thresholds.append(np.where(leaf, 0.0, tree.threshold))
        starts.append(starts[-1] + tree.node_count)
    return (
        np.array(starts, dtype=np.int64),
        np.concatenate(lefts),
        np.concatenate(rights),
        np.concatenate(features),
        np.concatenate(thresholds),
        np.concatenate(values),
    )


def from_regressor(estimator):
    """The numpy predictor of a fitted scikit-learn regressor geoembed:regress fits (Ridge or RidgeCV,
    KNeighborsRegressor, RandomForestRegressor), read through fitted attributes without importing scikit-learn."""
    if isinstance(estimator, Regressor):
        return estimator
    name = type(estimator).__name__
    if name in ("Ridge", "RidgeCV"):
        coef = np.asarray(estimator.coef_)
        if coef.ndim != 1:
            raise ModelDataError("multi-output ridge regression cannot be saved")
        return RidgeRegressor(coef, np.asarray(estimator.intercept_))
    if name == "KNeighborsRegressor":
        _check_euclidean_distance_weights(estimator)
        targets = np.asarray(estimator._y)  # noqa: SLF001 - scikit-learn keeps the training targets only here
        if targets.ndim != 1:
            raise ModelDataError("multi-output kNN regression cannot be saved")
        vectors = np.asarray(estimator._fit_X)  # noqa: SLF001 - the training vectors, as scikit-learn validated them
        return NeighboursRegressor(vectors, targets, estimator.n_neighbors, estimator.weights)
    if name == "RandomForestRegressor":
        return ForestRegressor(*_tree_arrays(estimator, lambda value: value[:, 0, 0]))
    raise ModelDataError(f"a {name} cannot be saved as a GeoEmbed regression model")
