"""Regression of a numeric field on embeddings: models, spatially blocked CV, metrics, block-wise prediction.

Methods (scikit-learn): random forest, ridge (its penalty chosen by generalised cross-validation) and k-nearest
neighbours with distance weights. The fitted model is kept, saved and applied as its numpy predictor
(analysis/predictors.py), in the data-only model file of analysis/model_file.py, so a model trained on one year can
predict another without scikit-learn or pickle.
"""

import csv
import html
import io

import numpy as np

from ..loaders.errors import GeoEmbedError
from ..loaders.model import EmbeddingBlock
from . import model_file
from .classify import SKLEARN_INSTALL, FittedModel, cv_folds, has_sklearn
from .predictors import from_regressor
from .report import NO_CV_NOTE, page_start

METHODS = ("random_forest", "ridge", "knn")
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
        raise GeoEmbedError(f"METHOD={method} {SKLEARN_INSTALL}.")
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
    assignment = cv_folds(groups, folds)
    if assignment is None:
        return None
    predicted = np.empty(len(targets), dtype=np.float64)
    for fold in np.unique(assignment):
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


class RegressionModel(FittedModel):
    """A fitted regressor (kept as its numpy predictor) with what is needed to apply it safely elsewhere."""

    to_predictor = staticmethod(from_regressor)

    def __init__(self, estimator, target, band_names, product, method, report=None, versions=None):
        super().__init__(estimator, band_names, product, method, report, versions)
        self.target = target

    def predicted_fields(self):
        return {"target": self.target}

    def predict(self, features):
        return self.estimator.predict(features)


def load_model(path):
    """A RegressionModel saved by geoembed:regress; a classifier, a pickle (never unpickled) or any other file is a
    one-line GeoEmbedError."""
    fields, predictor = model_file.load(path, task="regression")
    return RegressionModel(predictor, **fields)


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
        *page_start(title),
        f"<p>Field: <b>{esc(field)}</b>. Method: <b>{esc(method)}</b>. {esc(folds_note)}</p>",
        f"<p>{summary['count']} samples; values from {summary['min']:.6g} to {summary['max']:.6g} "
        f"(mean {summary['mean']:.6g}; 2nd-98th percentile {summary['p2']:.6g} to {summary['p98']:.6g}).</p>",
    ]
    if result is None:
        parts.append(NO_CV_NOTE)
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
