"""geoembed:train and geoembed:classify - classifiers on labelled features, applied block by block."""

import json

import numpy as np
from osgeo import gdal
from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import classify, model_file
from ..analysis.regions import polygon_pixels
from ..analysis.report import report_html
from ..analysis.sampling import sample
from ..loaders.raster.writer import OutputSpec, provenance_metadata, write_rasters
from ..loaders.remote.locations import atomic_file
from ..qgis_compat import SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import features_in, open_input
from .styles import ClassStyler, write_class_palette

METHODS = classify.METHODS  # the METHOD choices, also offered by the GeoEmbed panel
MODEL_FILTER = f"GeoEmbed model (*.{model_file.EXTENSION})"  # data only: analysis/model_file.py
MAX_PIXELS_PER_POLYGON = 2000  # bounds memory and keeps big polygons from drowning small ones


class TrainAlgorithm(GeoEmbedAlgorithm):
    NAME = "train"
    DISPLAY_NAME = "Train a classifier"
    GROUP = "Classify"
    GROUP_ID = "classify"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        add_training_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Classes")))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_CONFIDENCE", self.tr("Confidence"), optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL", self.tr("Model file"), fileFilter=MODEL_FILTER, optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_REPORT", self.tr("Accuracy report"), fileFilter="HTML (*.html)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString("METRICS", self.tr("Cross-validation metrics (JSON)")))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        method = self.parameterAsEnumString(parameters, "METHOD", context) or "random_forest"
        classify.make_model(method)  # a missing scikit-learn is said before any work
        model_path = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context) if parameters.get("OUTPUT_MODEL") else ""
        raster = open_input(self, parameters, context, log)
        try:
            features, labels, xs, ys, class_names = self._samples(parameters, context, feedback, raster)
            counts = np.bincount(labels, minlength=len(class_names))
            feedback.setProgressText(self.tr("Cross-validating with spatial blocks"))
            block = block_size(xs, ys)
            groups = classify.spatial_blocks(xs, ys, block)
            predicted = classify.cross_validate(features, labels, groups, method)
            result = classify.metrics(labels, predicted, list(range(len(class_names)))) if predicted is not None else None
            if result is not None:
                log.info(f"Spatially blocked cross-validated accuracy: {100 * result['accuracy']:.1f} %.")
            feedback.setProgressText(self.tr("Training on all samples"))
            estimator = classify.make_model(method).fit(features, labels)
            model = classify.TrainedModel(
                estimator,
                class_names,
                raster.band_names,
                raster.provenance.product,
                method,
                report={"accuracy": None if result is None else result["accuracy"], "counts": counts.tolist()},
            )
            if model_path:
                model.check_size()  # said before any output is written
            outputs = write_class_maps(self, parameters, context, raster, model, log)
        finally:
            raster.close()
        if model_path:
            outputs["OUTPUT_MODEL"] = model.save(model_path)
        outputs["METRICS"] = json.dumps(_metrics_json(class_names, counts, result))
        report_path = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) if parameters.get("OUTPUT_REPORT") else ""
        if report_path:
            note = f"{len(np.unique(groups))} spatial blocks of {block:g} map units, grouped into up to 5 folds."
            with atomic_file(report_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
                out.write(report_html("GeoEmbed classifier report", class_names, counts, method, result, note))
            outputs["OUTPUT_REPORT"] = report_path
        return outputs

    def _samples(self, parameters, context, feedback, raster):
        source = self.parameterAsSource(parameters, "TRAINING", context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, "TRAINING"))
        field = self.parameterAsString(parameters, "FIELD", context)
        if source.fields().indexOf(field) < 0:
            raise QgsProcessingException(f"TRAINING has no field '{field}'; pick one of: {', '.join(source.fields().names())}.")
        entries = [(f, g) for f, g in features_in(source, raster.grid.crs, context, feedback) if f[field] not in (None, "")]
        if not entries:
            raise QgsProcessingException("TRAINING has no labelled features; give points or polygons with a class in FIELD.")
        class_names = sorted({str(f[field]) for f, _ in entries}, key=natural_order)
        if len(class_names) < 2:
            raise QgsProcessingException(f"TRAINING has a single class ({class_names[0]}); a classifier needs at least two.")
        index = {name: i for i, name in enumerate(class_names)}
        values, labels, xs, ys = [], [], [], []
        points = [(f, g) for f, g in entries if g[0] == "point"]
        if points:
            px = np.array([g[1][0] for _, g in points])
            py = np.array([g[1][1] for _, g in points])
            sampled, valid = sample(raster, px, py)
            values.append(sampled[valid])
            labels.extend(index[str(f[field])] for (f, _), ok in zip(points, valid) if ok)
            xs.append(px[valid])
            ys.append(py[valid])
        grid = raster.grid
        for seed, (feature, (kind, rings)) in enumerate(entries):
            if kind != "polygon":
                continue
            pixels, cols, rows = polygon_pixels(raster, rings, MAX_PIXELS_PER_POLYGON, seed)
            values.append(pixels)
            labels.extend([index[str(feature[field])]] * len(pixels))
            xs.append(grid.x0 + (cols + 0.5) * grid.res_x)
            ys.append(grid.y0 - (rows + 0.5) * grid.res_y)
        labels = np.array(labels, dtype=np.int64)
        if len(labels) == 0:
            raise QgsProcessingException("No TRAINING feature lies on a valid pixel of INPUT; check that they overlap.")
        present = np.unique(labels)
        if len(present) < 2:
            raise QgsProcessingException(
                f"Only the class {class_names[present[0]]} lies on valid pixels of INPUT; a classifier needs at least two."
            )
        return np.concatenate(values), labels, np.concatenate(xs), np.concatenate(ys), class_names


class ClassifyAlgorithm(GeoEmbedAlgorithm):
    NAME = "classify"
    DISPLAY_NAME = "Classify with a saved model"
    GROUP = "Classify"
    GROUP_ID = "classify"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        # any extension is taken, so an old .pkl model gets its own message (it is never unpickled)
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL", self.tr("Model saved by geoembed:train"), fileFilter=f"{MODEL_FILTER};;All files (*)"
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Classes")))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_CONFIDENCE", self.tr("Confidence"), optional=True, createByDefault=False
            )
        )

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        model = classify.load_model(self.parameterAsFile(parameters, "MODEL", context))
        raster = open_input(self, parameters, context, log)
        try:
            model.check_bands(raster.band_names)
            return write_class_maps(self, parameters, context, raster, model, log)
        finally:
            raster.close()


def write_class_maps(algorithm, parameters, context, raster, model, log):
    """OUTPUT (classes 1..n, 0 = nodata, colour table and class names) and optional OUTPUT_CONFIDENCE."""
    producer = classify.ClassRasters(raster, model)
    meta = provenance_metadata(raster.provenance)
    meta.update(GEOEMBED_ANALYSIS=f"{model.method} classifier", GEOEMBED_CLASSES="|".join(model.class_names))
    class_type = gdal.GDT_Byte if len(model.class_names) < 255 else gdal.GDT_UInt16
    output = algorithm.parameterAsOutputLayer(parameters, "OUTPUT", context)
    specs = [OutputSpec(output, ("class",), class_type, 0, meta)]
    confidence = ""
    if parameters.get("OUTPUT_CONFIDENCE") not in (None, ""):
        confidence = algorithm.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
        specs.append(OutputSpec(confidence, ("confidence",), gdal.GDT_Float32, -1.0, meta))
    log.info(f"Classifying {raster.grid.width} x {raster.grid.height} pixels into {len(model.class_names)} classes.")
    write_rasters(raster.grid, specs, lambda w: producer.produce(w)[: len(specs)], log.progress, log.is_cancelled)
    write_class_palette(output, model.class_names)
    outputs = {"OUTPUT": output}
    if confidence:
        outputs["OUTPUT_CONFIDENCE"] = confidence
    if context.willLoadLayerOnCompletion(output):
        details = context.layerToLoadOnCompletionDetails(output)
        details.name = "Classes"
        details.setPostProcessor(ClassStyler.create(model.class_names))
    return outputs


def _metrics_json(class_names, counts, result):
    """Classes, sample counts and the blocked cross-validation results (None when it could not run), as plain JSON."""
    metrics = {"classes": list(class_names), "counts": [int(c) for c in counts], "accuracy": None}
    if result is not None:
        metrics.update(
            accuracy=result["accuracy"],
            confusion=result["confusion"].tolist(),
            f1=[float(v) for v in result["f1"]],
        )
    return metrics


def add_training_parameters(algorithm):
    """TRAINING, FIELD and METHOD, as geoembed:train and geoembed:compare take them."""
    algorithm.addParameter(
        QgsProcessingParameterFeatureSource(
            "TRAINING",
            algorithm.tr("Labelled points or polygons"),
            [SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON],
        )
    )
    algorithm.addParameter(QgsProcessingParameterField("FIELD", algorithm.tr("Class field"), parentLayerParameterName="TRAINING"))
    algorithm.addParameter(
        QgsProcessingParameterEnum(
            "METHOD", algorithm.tr("Method"), options=list(METHODS), defaultValue="random_forest", usesStaticStrings=True
        )
    )


def block_size(xs, ys):
    """Spatial CV blocks: a fifth of the larger side of the samples' extent (at least one pixel apart)."""
    span = max(float(np.ptp(xs)), float(np.ptp(ys)))
    return span / 5 if span > 0 else 1.0


def natural_order(text):
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)
