"""Regression of a numeric field on embeddings: models, spatially blocked CV, metrics, block-wise prediction.

Methods (scikit-learn): random forest, ridge (its penalty chosen by generalised cross-validation) and k-nearest
neighbours with distance weights. The fitted model is kept, saved and applied as its numpy predictor
(analysis/predictors.py), in the data-only model file of analysis/model_file.py, so a model trained on one year can
predict another without scikit-learn or pickle.
"""

import csv
import html
import io
import platform

import numpy as np

from .. import __about__
from ..loaders.errors import GeoEmbedError
from ..loaders.model import EmbeddingBlock
from . import model_file
from .classify import blocked_folds, has_sklearn
from .predictors import ModelDataError, from_regressor

METHODS = ("random_forest", "ridge", "knn")
SKLEARN_HINT = (
    "needs scikit-learn: on Debian/Ubuntu 'sudo apt install python3-sklearn', elsewhere 'python3 -m pip install "
    "scikit-learn' into QGIS's Python"
)
NEIGHBOURS = 5
TREES = 100
RIDGE_ALPHAS = tuple(10.0**e for e in range(-4, 4))
SAMPLE_PER_BLOCK = 4096  # predictions kept per block for the style's percentiles
SAMPLE_TOTAL = 1_000_000


def make_regressor(method, samples=None, seed=0):
    """An unfitted scikit-learn regressor; samples caps kNN's k (a fold may hold fewer than 5 samples)."""
    if method not in METHODS:
        raise GeoEmbedError(f"Unknown METHOD '{method}'; choose one of {', '.join(METHODS)}.")
    if not has_sklearn():
        raise GeoEmbedError(f"METHOD={method} {SKLEARN_HINT}.")
    if method == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=TREES, n_jobs=-1, random_state=seed)
    if method == "ridge":
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=RIDGE_ALPHAS)
    from sklearn.neighbors import KNeighborsRegressor

    k = NEIGHBOURS if samples is None else max(1, min(NEIGHBOURS, samples))
    return KNeighborsRegressor(n_neighbors=k, weights="distance")


def fit(features, targets, method, seed=0):
    return make_regressor(method, len(targets), seed).fit(features, targets)


def cross_validate(features, targets, groups, method, folds=5, seed=0):
    """(predictions, fold of each sample) of a spatially blocked k-fold CV (each sample predicted by a model that
    never saw its block, blocks as geoembed:train makes them), or None when the samples fill a single block."""
    folds = min(folds, len(np.unique(groups)))
    if folds < 2:
        return None
    assignment = blocked_folds(groups, folds)
    predicted = np.empty(len(targets), dtype=np.float64)
    for fold in range(folds):
        test = assignment == fold
        model = fit(features[~test], targets[~test], method, seed)
        predicted[test] = model.predict(features[test])
    return predicted, assignment


def scores(truth, predicted):
    """R2 (1 - residual / total sum of squares; None when the truth is constant), RMSE and MAE."""
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    residual = truth - predicted
    total = float(np.sum((truth - truth.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else None
    return {
        "r2": r2,
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "mae": float(np.mean(np.abs(residual))),
        "samples": len(truth),
    }


def metrics(truth, predicted, assignment):
    """Pooled scores of the blocked CV predictions, and the scores of each fold."""
    folds = [scores(truth[assignment == fold], predicted[assignment == fold]) for fold in np.unique(assignment)]
    return {**scores(truth, predicted), "folds": folds}


def target_summary(targets):
    targets = np.asarray(targets, dtype=np.float64)
    low, high = np.percentile(targets, [2, 98])
    return {
        "count": len(targets),
        "min": float(targets.min()),
        "max": float(targets.max()),
        "mean": float(targets.mean()),
        "p2": float(low),
        "p98": float(high),
    }


class RegressionModel:
    """A fitted regressor (kept as its numpy predictor) with what is needed to apply it safely elsewhere."""

    def __init__(self, estimator, target, band_names, product, method, report=None, versions=None):
        try:
            self.estimator = from_regressor(estimator)
        except ModelDataError as exc:
            raise GeoEmbedError(f"The {method} model cannot be saved: {exc}.") from None
        self.target = target
        self.band_names = tuple(band_names)
        self.product = product
        self.method = method
        self.report = report or {}
        self.versions = versions or {
            "geoembed": __about__.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "sklearn": _sklearn_version(),
        }

    def check_bands(self, band_names):
        if tuple(band_names) != self.band_names:
            raise GeoEmbedError(
                f"The model was trained on {len(self.band_names)} bands ({self.band_names[0]}..{self.band_names[-1]}, "
                f"{self.product}) but this raster has {len(band_names)} ({band_names[0]}..{band_names[-1]}); "
                "apply it to a raster of the same product."
            )

    def predict(self, features):
        return self.estimator.predict(features)

    def check_size(self):
        model_file.check_size(self.estimator, self.method)

    def save(self, path):
        fields = {
            "method": self.method,
            "target": self.target,
            "band_names": list(self.band_names),
            "product": self.product,
            "report": self.report,
            "versions": self.versions,
        }
        return model_file.save(path, self.estimator, fields)


def load_model(path):
    """A RegressionModel saved by geoembed:regress; a classifier, a pickle (never unpickled) or any other file is a
    one-line GeoEmbedError."""
    fields, predictor = model_file.load(path, task="regression")
    return RegressionModel(predictor, **fields)


def _sklearn_version():
    if not has_sklearn():
        return None
    import sklearn

    return sklearn.__version__


class PredictionRaster:
    """Block producer of the predicted value (float32, invalid where the input is nodata); keeps a bounded, evenly
    spread sample of the predictions for the colour ramp's percentiles."""

    def __init__(self, raster, model, blocks=1):
        model.check_bands(raster.band_names)
        self.raster = raster
        self.model = model
        self.per_block = max(16, min(SAMPLE_PER_BLOCK, SAMPLE_TOTAL // max(1, blocks)))
        self._kept = []

    def produce(self, window):
        block = self.raster.read(window)
        values = np.zeros(block.valid.shape, dtype=np.float32)
        if block.valid.any():
            predicted = self.model.predict(block.values[:, block.valid].T)
            values[block.valid] = predicted
            step = max(1, len(predicted) // self.per_block)
            self._kept.append(predicted[::step].astype(np.float32))
        return [EmbeddingBlock(values, block.valid)]

    def percentiles(self, low=2.0, high=98.0):
        """(low, high) percentiles of the predictions sampled so far, or None before any valid pixel."""
        if not self._kept:
            return None
        kept = np.concatenate(self._kept).astype(np.float64)
        return tuple(float(v) for v in np.percentile(kept, [low, high]))


# --- report --------------------------------------------------------------------------------------------------------

METRIC_NAMES = (("r2", "R²"), ("rmse", "RMSE"), ("mae", "MAE"), ("samples", "Samples"))


def _number(value):
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def report_csv(result, summary, method, field):
    """One row per fold and one 'all' row: fold, samples, R2, RMSE, MAE."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["fold", "samples", "r2", "rmse", "mae", "method", "field"])
    rows = [] if result is None else [(str(i + 1), f) for i, f in enumerate(result["folds"])] + [("all", result)]
    for name, row in rows:
        writer.writerow([name, row["samples"], _number(row["r2"]), _number(row["rmse"]), _number(row["mae"]), method, field])
    if result is None:
        writer.writerow(["all", summary["count"], "", "", "", method, field])
    return out.getvalue()


def report_html(title, result, summary, method, field, folds_note):
    """A self-contained HTML page: method, the target's distribution, blocked-CV R2, RMSE, MAE, overall and per fold."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
        "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
        "</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>Field: <b>{esc(field)}</b>. Method: <b>{esc(method)}</b>. {esc(folds_note)}</p>",
        f"<p>{summary['count']} samples; values from {summary['min']:.6g} to {summary['max']:.6g} "
        f"(mean {summary['mean']:.6g}; 2nd-98th percentile {summary['p2']:.6g} to {summary['p98']:.6g}).</p>",
    ]
    if result is None:
        parts.append("<p>Cross-validation was not possible: the samples fall in a single spatial block.</p>")
    else:
        r2 = "undefined (constant values)" if result["r2"] is None else f"{result['r2']:.3f}"
        parts.append(f"<h2>Spatially blocked cross-validation: R² {r2}, RMSE {result['rmse']:.6g}, MAE {result['mae']:.6g}</h2>")
        parts.append("<table><tr><th class='l'>Fold</th>" + "".join(f"<th>{esc(n)}</th>" for _, n in METRIC_NAMES) + "</tr>")
        for index, fold in enumerate(result["folds"], start=1):
            cells = "".join(f"<td>{_number(fold[key])}</td>" for key, _ in METRIC_NAMES)
            parts.append(f"<tr><td class='l'>{index}</td>{cells}</tr>")
        cells = "".join(f"<td><b>{_number(result[key])}</b></td>" for key, _ in METRIC_NAMES)
        parts.append(f"<tr><td class='l'><b>all</b></td>{cells}</tr></table>")
    parts.append("</body></html>")
    return "\n".join(parts)
