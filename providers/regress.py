"""geoembed:regress - a numeric field of points or polygons predicted from embeddings, as a continuous raster."""

import json

import numpy as np
from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)

from ..analysis import regress
from ..analysis.training_samples import collect_samples
from ..loaders.raster.writer import BLOCK, OutputSpec, check_destination, provenance_metadata, write_rasters
from ..loaders.remote.locations import atomic_file
from ..qgis_compat import SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON, save_default_style
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import features_in, open_input
from .styles import RampStyler, apply_ramp
from .train import MAX_PIXELS_PER_POLYGON, MODEL_FILTER, cv_groups

REPORT_FILTER = "HTML (*.html);;CSV (*.csv)"


class RegressAlgorithm(GeoEmbedAlgorithm):
    NAME = "regress"
    DISPLAY_NAME = "Regress a numeric field"
    GROUP = "Classify"
    GROUP_ID = "classify"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "TRAINING",
                self.tr("Points or polygons with a numeric value (not needed with MODEL)"),
                [SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField("FIELD", self.tr("Numeric field"), parentLayerParameterName="TRAINING", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "METHOD", self.tr("Method"), options=list(regress.METHODS), defaultValue="random_forest", usesStaticStrings=True
            )
        )
        # any extension is taken, so a .pkl gets its own message (it is never unpickled)
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                self.tr("Regression model saved by geoembed:regress (then only prediction runs)"),
                fileFilter=f"{MODEL_FILTER};;All files (*)",
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Predicted value")))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL", self.tr("Model file"), fileFilter=MODEL_FILTER, optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_REPORT", self.tr("Cross-validation report"), REPORT_FILTER, optional=True, createByDefault=False
            )
        )
        for name, description in (
            ("R2", "Blocked cross-validated R²"),
            ("RMSE", "Blocked cross-validated RMSE"),
            ("MAE", "Blocked cross-validated MAE"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))
        self.addOutput(QgsProcessingOutputString("METRICS", self.tr("Cross-validation metrics (JSON)")))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        check_destination(output)
        model_in = self.parameterAsFile(parameters, "MODEL", context) if parameters.get("MODEL") else ""
        model_path = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context) if parameters.get("OUTPUT_MODEL") else ""
        report_path = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) if parameters.get("OUTPUT_REPORT") else ""
        if report_path and not report_path.lower().endswith((".html", ".htm", ".csv")):
            raise QgsProcessingException("OUTPUT_REPORT must end in .html or .csv.")
        if model_in:
            model = regress.load_model(model_in)
            method = model.method
            log.info(f"Applying the {method} regression model of '{model.target}' in {model_in}: no training.")
        else:
            method = self.parameterAsEnumString(parameters, "METHOD", context) or "random_forest"
            regress.make_regressor(method)  # a missing scikit-learn is said before any work
        raster = open_input(self, parameters, context, log)
        result = summary = None
        try:
            if model_in:
                model.check_bands(raster.band_names)
                if model.product != raster.provenance.product:
                    log.warning(f"MODEL was trained on {model.product} and INPUT is {raster.provenance.product}.")
            else:
                model, result, summary, note = self._train(parameters, context, feedback, raster, method, log)
                if model_path:
                    model.check_size()  # said before any output is written
            low_high = self._write(parameters, context, raster, model, output, log, feedback)
        finally:
            raster.close()
        outputs = {"OUTPUT": output, "R2": None, "RMSE": None, "MAE": None}
        if result is not None:
            outputs.update(R2=result["r2"], RMSE=result["rmse"], MAE=result["mae"])
        metrics = {"field": model.target, "method": method}
        if model_in:
            metrics.update(model=model_in, training=model.report)
        else:
            metrics.update(values=summary, cv=result)
        outputs["METRICS"] = json.dumps(metrics)
        if model_path:
            outputs["OUTPUT_MODEL"] = model.save(model_path)
        if report_path and not model_in:
            self._report(report_path, result, summary, method, model.target, note)
            outputs["OUTPUT_REPORT"] = report_path
        elif report_path:
            log.warning("OUTPUT_REPORT is written when training; with MODEL there is nothing to cross-validate.")
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = f"Predicted {model.target}"
            details.setPostProcessor(RampStyler.create(*low_high))
        return outputs

    def _train(self, parameters, context, feedback, raster, method, log):
        features, targets, xs, ys, field = self._samples(parameters, context, feedback, raster)
        summary = regress.target_summary(targets)
        log.info(
            f"{len(targets)} samples of '{field}' from {summary['min']:.6g} to {summary['max']:.6g} (mean {summary['mean']:.6g})."
        )
        feedback.setProgressText(self.tr("Cross-validating with spatial blocks"))
        groups, note = cv_groups(xs, ys)
        cv = regress.cross_validate(features, targets, groups, method)
        result = None
        if cv is None:
            log.warning("All samples fall in one spatial block: no cross-validation; R2, RMSE and MAE are not measured.")
        else:
            result = regress.metrics(targets, *cv)
            r2 = "undefined (constant values)" if result["r2"] is None else f"{result['r2']:.3f}"
            log.info(
                f"Spatially blocked cross-validation ({len(result['folds'])} folds): R2 {r2}, "
                f"RMSE {result['rmse']:.6g}, MAE {result['mae']:.6g}."
            )
            for index, fold in enumerate(result["folds"], start=1):
                fold_r2 = "n/a" if fold["r2"] is None else f"{fold['r2']:.3f}"
                log.info(
                    f"  fold {index}: {fold['samples']} samples, R2 {fold_r2}, RMSE {fold['rmse']:.6g}, MAE {fold['mae']:.6g}"
                )
        feedback.setProgressText(self.tr("Training on all samples"))
        estimator = regress.fit(features, targets, method)
        report = {"values": summary, "cv": None if result is None else {k: result[k] for k in ("r2", "rmse", "mae", "samples")}}
        model = regress.RegressionModel(estimator, field, raster.band_names, raster.provenance.product, method, report=report)
        return model, result, summary, note

    def _samples(self, parameters, context, feedback, raster):
        source = self.parameterAsSource(parameters, "TRAINING", context) if parameters.get("TRAINING") else None
        if source is None:
            if parameters.get("TRAINING"):
                raise QgsProcessingException(self.invalidSourceError(parameters, "TRAINING"))
            raise QgsProcessingException("Give TRAINING points or polygons and a numeric FIELD, or a MODEL to apply.")
        field = self.parameterAsString(parameters, "FIELD", context)
        index = source.fields().indexOf(field) if field else -1
        numeric = [f.name() for f in source.fields() if f.isNumeric()]
        if index < 0:
            choices = ", ".join(numeric) if numeric else "none: add one"
            raise QgsProcessingException(f"TRAINING has no field '{field}'; pick a numeric one ({choices}).")
        definition = source.fields().at(index)
        if not definition.isNumeric():
            raise QgsProcessingException(
                f"FIELD '{field}' is {definition.typeName() or 'not numeric'}, not a number; pick a numeric field "
                f"({', '.join(numeric) if numeric else 'TRAINING has none'})."
            )
        entries = []
        for feature, geometry in features_in(source, raster.grid.crs, context, feedback):
            value = feature[field]
            try:
                value = float(value)
            except (TypeError, ValueError):  # NULL
                continue
            if np.isfinite(value):
                entries.append((value, geometry))
        if not entries:
            raise QgsProcessingException(
                f"TRAINING has no feature with a value in '{field}'; give points or polygons with numbers."
            )
        features, targets, xs, ys = collect_samples(raster, entries, MAX_PIXELS_PER_POLYGON, feedback.isCanceled)
        if len(targets) == 0:
            raise QgsProcessingException("No TRAINING feature lies on a valid pixel of INPUT; check that they overlap.")
        if len(targets) < 2:
            raise QgsProcessingException("Only one TRAINING sample lies on a valid pixel of INPUT; a regression needs more.")
        return features, targets, xs, ys, field

    def _write(self, parameters, context, raster, model, output, log, feedback):
        """Writes OUTPUT block by block; returns the colour ramp's range (2nd and 98th percentiles of the predictions)."""
        blocks = sum(1 for _ in raster.grid.blocks(BLOCK))
        producer = regress.PredictionRaster(raster, model, blocks)
        meta = provenance_metadata(raster.provenance)
        meta.update(GEOEMBED_ANALYSIS=f"{model.method} regression of {model.target}", GEOEMBED_TARGET=model.target)
        cv = model.report.get("cv") if isinstance(model.report, dict) else None
        if isinstance(cv, dict):
            for key in ("r2", "rmse", "mae"):
                if cv.get(key) is not None:
                    meta[f"GEOEMBED_CV_{key.upper()}"] = f"{cv[key]:.6g}"
        feedback.setProgressText(self.tr("Predicting"))
        log.info(f"Predicting '{model.target}' over {raster.grid.width} x {raster.grid.height} pixels.")
        spec = OutputSpec(output, (model.target,), metadata=meta)
        write_rasters(raster.grid, [spec], producer.produce, log.progress, log.is_cancelled)
        low_high = producer.percentiles() or _training_range(model)
        if low_high[1] <= low_high[0]:
            low_high = (low_high[0] - 0.5, low_high[0] + 0.5)
        style_ramp(output, *low_high)
        return low_high

    def _report(self, path, result, summary, method, field, note):
        if path.lower().endswith(".csv"):
            text = regress.report_csv(result, summary, method, field)
        else:
            text = regress.report_html(f"GeoEmbed regression report: {field}", result, summary, method, field, note)
        with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
            out.write(text)


def _training_range(model):
    values = model.report.get("values") if isinstance(model.report, dict) else None
    if isinstance(values, dict) and isinstance(values.get("p2"), (int, float)) and isinstance(values.get("p98"), (int, float)):
        return float(values["p2"]), float(values["p98"])
    return 0.0, 1.0


def style_ramp(path, low, high):
    """A default QGIS style beside the GeoTIFF: the colour ramp over low..high."""
    layer = QgsRasterLayer(path, "prediction", "gdal")
    apply_ramp(layer, low, high)
    save_default_style(layer)
