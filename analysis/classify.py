"""Supervised classification of embeddings: training samples, models, spatially blocked CV, prediction.

Methods: random forest, logistic regression, k-nearest neighbours, gradient boosting (scikit-learn) and a pure-numpy
nearest centroid (cosine) that works without scikit-learn.
"""

import importlib.util
import platform

import numpy as np

from .. import __about__
from ..loaders.errors import GeoEmbedError
from ..loaders.model import EmbeddingBlock, EmbeddingRaster
from ..loaders.raster.prefetch import Prefetched
from ..loaders.raster.writer import BLOCK, in_row_pairs
from . import model_file
from .neural_network import NeuralNetwork
from .predictors import CentroidPredictor, ModelDataError, from_estimator
from .regions import unit

METHODS = ("random_forest", "logistic_regression", "knn", "nearest_centroid", "gradient_boosting", "neural_network")
GRADIENT_BOOSTING = {"n_estimators": 50, "max_depth": 2, "learning_rate": 0.2, "subsample": 0.5}
SKLEARN_INSTALL = (  # also geoembed:regress's
    "needs scikit-learn: on Debian/Ubuntu 'sudo apt install python3-sklearn', elsewhere 'python3 -m pip install "
    "scikit-learn' into QGIS's Python"
)
SKLEARN_HINT = f"{SKLEARN_INSTALL}; METHOD=nearest_centroid works without it"


def has_sklearn():
    return importlib.util.find_spec("sklearn") is not None


def sklearn_version():
    if not has_sklearn():
        return None
    import sklearn

    return sklearn.__version__


def runtime_versions():
    """The versions a model is trained with, kept in its file."""
    return {
        "geoembed": __about__.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "sklearn": sklearn_version(),
    }


class NearestCentroid(CentroidPredictor):
    """Cosine nearest centroid: each class is the normalised mean of its unit vectors (predicts as CentroidPredictor)."""

    def __init__(self):
        super().__init__(np.zeros(0, dtype=np.int64), np.zeros((0, 0)))

    def fit(self, features, labels):
        self.classes_ = np.unique(labels)
        normed = unit(np.asarray(features, dtype=np.float64))
        self.centroids_ = unit(np.stack([normed[labels == c].mean(axis=0) for c in self.classes_]))
        return self


def make_model(method, seed=0):
    if method not in METHODS:
        raise GeoEmbedError(f"Unknown METHOD '{method}'; choose one of {', '.join(METHODS)}.")
    if method == "nearest_centroid":
        return NearestCentroid()
    if not has_sklearn():
        raise GeoEmbedError(f"METHOD={method} {SKLEARN_HINT}.")
    if method == "neural_network":
        return NeuralNetwork(seed)
    if method == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=seed)
    if method == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000)
    if method == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        # GRADIENT_BOOSTING: 50 rounds of depth-2 trees (one per class), each fitted on half the samples: a pixel
        # passes 100 inner nodes per class (~2,150 in all in the default forest), for an accuracy as good or better
        # (bench/bench_forest.py; 100 rounds at learning rate 0.1 scores higher but classifies twice as slowly)
        return GradientBoostingClassifier(**GRADIENT_BOOSTING, random_state=seed)
    # kNN over every training point, not over class prototypes: those were faster (and more accurate on the bench's
    # linear labels), but averaged away the pixels a user corrects in the panel's review loop
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=5, weights="distance")


def spatial_blocks(xs, ys, size):
    """A block id per sample: samples in the same size x size square share it (for blocked CV)."""
    bx = np.floor(np.asarray(xs) / size).astype(np.int64)
    by = np.floor(np.asarray(ys) / size).astype(np.int64)
    _, ids = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    return ids.ravel()


def blocked_folds(groups, folds):
    """Fold of each sample: whole spatial blocks go to one fold, spread so folds have similar sizes."""
    ids, counts = np.unique(groups, return_counts=True)
    fold_of_block, load = {}, np.zeros(folds, dtype=np.int64)
    for block in ids[np.argsort(-counts, kind="stable")]:
        fold = int(load.argmin())
        fold_of_block[block] = fold
        load[fold] += counts[ids == block][0]
    return np.array([fold_of_block[g] for g in groups])


def cv_folds(groups, folds):
    """Fold of each sample for a spatially blocked CV with up to `folds` folds (no more than the blocks; every fold
    gets a block), or None when the samples fill a single block (nothing to cross-validate)."""
    folds = min(folds, len(np.unique(groups)))
    return blocked_folds(groups, folds) if folds >= 2 else None


def cross_validate(features, labels, groups, method, folds=5, seed=0):
    """Predictions of a spatially blocked k-fold CV (each sample predicted by a model that never saw its block)."""
    assignment = cv_folds(groups, folds)
    if assignment is None:
        return None
    predicted = np.empty(len(labels), dtype=labels.dtype)
    for fold in np.unique(assignment):
        test = assignment == fold
        train = ~test
        if len(np.unique(labels[train])) < 2:
            predicted[test] = labels[train][0]
            continue
        model = make_model(method, seed).fit(features[train], labels[train])
        predicted[test] = model.predict(features[test])
    return predicted


def metrics(truth, predicted, classes):
    """Accuracy, confusion matrix (rows = truth) and per-class precision, recall, F1 and support."""
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        confusion[index[t], index[p]] += 1
    tp = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / confusion.sum(axis=0))
        recall = np.nan_to_num(tp / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {
        "accuracy": float(tp.sum() / max(confusion.sum(), 1)),
        "confusion": confusion,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": confusion.sum(axis=1),
    }


class FittedModel:
    """A fitted estimator, kept as its numpy predictor (analysis/predictors.py), with what is needed to apply it
    safely elsewhere. Subclasses (TrainedModel here, regress.RegressionModel) say how an estimator becomes a predictor
    (to_predictor), what it predicts (predicted_fields, saved after the method) and, in APPLY_ADVICE, what to do with
    a raster of other bands."""

    APPLY_ADVICE = "apply it to a raster of the same product."

    def __init__(self, estimator, band_names, product, method, report=None, versions=None):
        try:
            self.estimator = self.to_predictor(estimator)
        except ModelDataError as exc:
            raise GeoEmbedError(f"The {method} model cannot be saved: {exc}.") from None
        self.band_names = tuple(band_names)
        self.product = product
        self.method = method
        self.report = report or {}
        self.versions = versions or runtime_versions()

    @staticmethod
    def to_predictor(estimator):
        raise NotImplementedError

    def predicted_fields(self):
        raise NotImplementedError

    def check_bands(self, band_names):
        if tuple(band_names) != self.band_names:
            raise GeoEmbedError(
                f"The model was trained on {len(self.band_names)} bands ({self.band_names[0]}..{self.band_names[-1]}, "
                f"{self.product}) but this raster has {len(band_names)} ({band_names[0]}..{band_names[-1]}); "
                f"{self.APPLY_ADVICE}"
            )

    def check_size(self):
        """Refuse, before any output is written, a model too large for a model file."""
        model_file.check_size(self.estimator, self.method)

    def save(self, path):
        """A data-only model file (analysis/model_file.py): no pickle, readable without scikit-learn."""
        fields = {
            "method": self.method,
            **self.predicted_fields(),
            "band_names": list(self.band_names),
            "product": self.product,
            "report": self.report,
            "versions": self.versions,
        }
        return model_file.save(path, self.estimator, fields)


class TrainedModel(FittedModel):
    """A fitted classifier with what is needed to apply it safely elsewhere.

    The estimator is kept as its numpy predictor (analysis/predictors.py): the class map train writes comes from the
    same numbers, and the same code, as the one classify makes from the saved file.
    """

    APPLY_ADVICE = "classify a raster of the same product."
    to_predictor = staticmethod(from_estimator)

    def __init__(self, estimator, class_names, band_names, product, method, report=None, versions=None):
        super().__init__(estimator, band_names, product, method, report, versions)
        self.class_names = list(class_names)

    def predicted_fields(self):
        return {"class_names": self.class_names}

    def predict(self, features, valid=None):
        """(class index 0..n-1, probability of that class) for (n, bands) features (Predictor.best's valid)."""
        best, probability = self.estimator.best(features, valid)
        # Estimators are fitted on class indices; classes_ lists the ones they saw, in order.
        return np.asarray(self.estimator.classes_)[best], probability

    def predict_columns(self, columns, valid=None):
        """predict() of (bands, n) pixel columns (a block's values, flattened), chunk by chunk: each chunk's features
        are a transposed view (no copy of the block) small enough for the processor's caches. Where valid (n,) is
        False the pixel may hold NaN or anything: zeros are classified instead (the caller writes nodata there)."""
        index = np.zeros(columns.shape[1], dtype=np.int64)
        probability = np.zeros(columns.shape[1], dtype=np.float64)
        step = self.estimator.chunk_pixels(columns.shape[0])
        for start in range(0, columns.shape[1], step):
            part = slice(start, start + step)
            chunk_valid = None if valid is None or valid[part].all() else valid[part]
            if chunk_valid is not None and not chunk_valid.any():
                continue
            index[part], probability[part] = self.predict(columns[:, part].T, chunk_valid)
        return index, probability


def load_model(path):
    """A TrainedModel saved by geoembed:train; any other file (a pickle included: never unpickled) is a one-line
    GeoEmbedError."""
    fields, predictor = model_file.load(path)
    return TrainedModel(predictor, **fields)


class ClassRasters:
    """Block producer for the class map (1..n, 0 = nodata) and the confidence of the chosen class.

    Blocks are read in the order write_rasters asks for them, the next one in a background thread (as similarity
    does); each block's float32 values are classified in place, in chunks of pixels, without a copy of the block.
    close() stops the background read; the raster itself stays open (its owner closes it). Blocks are to be asked
    for in the order `order` gives (write_rasters' order argument): two block rows at a time, so that each
    1024-pixel tile of an AEF source is decompressed once, even when GDAL's block cache cannot hold a row of them.
    """

    order = staticmethod(in_row_pairs)

    def __init__(self, raster, model, block=BLOCK):
        model.check_bands(raster.band_names)
        self.raster = raster
        self.model = model
        self.source = Prefetched(_Borrowed(raster), self.order(list(raster.grid.blocks(block))))

    def produce(self, window):
        block = self.source.read(window)
        classes = np.zeros(block.valid.shape, dtype=np.uint8 if len(self.model.class_names) < 255 else np.uint16)
        confidence = np.zeros(block.valid.shape, dtype=np.float32)
        if block.valid.any():
            columns, flipped = pixel_columns(block.values)
            valid = block.valid[::-1] if flipped else block.valid
            index, probability = self.model.predict_columns(columns, None if valid.all() else valid.ravel())
            index = index.reshape(valid.shape)
            probability = probability.reshape(valid.shape)
            if flipped:
                index, probability = index[::-1], probability[::-1]
            classes[block.valid] = index[block.valid] + 1
            confidence[block.valid] = probability[block.valid]
        return [EmbeddingBlock(classes, block.valid), EmbeddingBlock(confidence, block.valid)]

    def close(self):
        self.source.close()


def pixel_columns(values):
    """((bands, rows * cols) view of a (bands, rows, cols) block, whether its rows are reversed): a south-up file's
    block is a row-reversed view of a contiguous array, whose rows are taken in the file's order instead of copied."""
    if values.flags.c_contiguous:
        return values.reshape(values.shape[0], -1), False
    reversed_rows = values[:, ::-1]
    if reversed_rows.flags.c_contiguous:
        return reversed_rows.reshape(values.shape[0], -1), True
    return np.ascontiguousarray(values).reshape(values.shape[0], -1), False


class _Borrowed(EmbeddingRaster):
    """A raster read by ClassRasters' prefetch but owned, and closed, by its caller."""

    def __init__(self, raster):
        self.raster = raster
        self.grid = raster.grid
        self.band_names = raster.band_names
        self.provenance = raster.provenance

    def read(self, window):
        return self.raster.read(window)

    def close(self):
        pass
