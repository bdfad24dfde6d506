"""geoembed:train and geoembed:classify - classifiers on labelled features, applied block by block."""

import json
import os

import numpy as np
from osgeo import gdal
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import classify, model_file
from ..analysis.distributed import jobs as distributed
from ..analysis.report import report_html
from ..analysis.training_samples import collect_samples
from ..loaders.errors import Cancelled, GeoEmbedError
from ..loaders.open import open_embeddings
from ..loaders.raster.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from ..loaders.remote.locations import atomic_file, basename, is_url
from ..qgis_compat import SOURCE_RASTER, SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm
from .dask_cluster import add_cluster_parameters, cluster_settings
from .inputs import features_in, input_path, layer_location, open_input
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
            groups, note = cv_groups(xs, ys)
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
        targets = [(index[str(feature[field])], geometry) for feature, geometry in entries]
        features, labels, xs, ys = collect_samples(raster, targets, MAX_PIXELS_PER_POLYGON)
        labels = labels.astype(np.int64)
        if len(labels) == 0:
            raise QgsProcessingException("No TRAINING feature lies on a valid pixel of INPUT; check that they overlap.")
        present = np.unique(labels)
        if len(present) < 2:
            raise QgsProcessingException(
                f"Only the class {class_names[present[0]]} lies on valid pixels of INPUT; a classifier needs at least two."
            )
        return features, labels, xs, ys, class_names


class ClassifyAlgorithm(GeoEmbedAlgorithm):
    NAME = "classify"
    DISPLAY_NAME = "Classify with a saved model"
    GROUP = "Classify"
    GROUP_ID = "classify"
    PATH_INPUTS = ("INPUT",)
    HELP_PARTS = ("cluster",)

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
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUTS",
                self.tr("More years to classify with the same model (same product and bands; maps <OUTPUT>_<year>.tif)"),
                SOURCE_RASTER,
                optional=True,
            )
        )
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_YEARS", self.tr("Class maps of every year, oldest first")))
        add_cluster_parameters(self)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)
        model = classify.load_model(self.parameterAsFile(parameters, "MODEL", context))
        sources = year_sources(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        confidence = ""
        if parameters.get("OUTPUT_CONFIDENCE") not in (None, ""):
            confidence = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
        rasters = [open_input(self, parameters, context, log)]
        try:
            model.check_bands(rasters[0].band_names)
            for source in sources:
                rasters.append(open_embeddings(source, log, allow_paths_outside_mirror=settings.allow_paths_outside_mirror()))
                check_year_bands(model, rasters[-1], source)
            years = year_of_each(rasters, sources)
            jobs = [(rasters[0], output, confidence, years[0])]
            for raster, year in zip(rasters[1:], years[1:]):
                jobs.append((raster, with_year(output, year), with_year(confidence, year) if confidence else "", year))
            for _, path, conf, _ in jobs:
                for destination in filter(None, (path, conf)):
                    check_destination(destination)  # all of them, before any work
            write_years(jobs, model, log, cluster, [input_path(self, parameters, "INPUT", context), *sources])
        finally:
            for raster in rasters:
                raster.close()
        outputs = {"OUTPUT": output}
        if sources:  # (a run without INPUTS returns what it always did)
            outputs["OUTPUT_YEARS"] = [path for _, path, _, _ in sorted(jobs, key=_oldest_first)]
        if confidence:
            outputs["OUTPUT_CONFIDENCE"] = confidence
        load_years_on_completion(context, jobs, model.class_names)
        return outputs


def year_sources(algorithm, parameters, context):
    """The files (or folders, URLs) behind INPUTS, in the order given."""
    value = parameters.get("INPUTS")
    if value in (None, "", []):
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    if all(isinstance(v, str) and (os.path.exists(v) or is_url(v)) for v in values):
        return list(values)  # paths are handed over as they are (see inputs.input_path)
    return [layer_location(layer.source()) for layer in algorithm.parameterAsLayerList(parameters, "INPUTS", context)]


def check_year_bands(model, raster, source):
    try:
        model.check_bands(raster.band_names)
    except GeoEmbedError as exc:
        message = str(exc)
        raise GeoEmbedError(f"INPUTS raster {basename(source)}: {message[0].lower()}{message[1:]}") from None


def year_of_each(rasters, sources):
    """INPUT's year (None when unknown) and each INPUTS raster's: its GEOEMBED_YEAR, else its position (1, 2, ...)."""
    years = [rasters[0].provenance.year]
    named = {}
    if years[0] is not None:
        named[years[0]] = "INPUT"
    for position, (raster, source) in enumerate(zip(rasters[1:], sources), start=1):
        year = raster.provenance.year if raster.provenance.year is not None else position
        if year in named:
            raise GeoEmbedError(
                f"INPUTS raster {basename(source)} is of {year}, like {named[year]}; give each year once "
                "(the maps are named <OUTPUT>_<year>)."
            )
        named[year] = f"INPUTS raster {basename(source)}"
        years.append(year)
    return years


def with_year(path, year):
    stem, extension = os.path.splitext(path)
    return f"{stem}_{year}{extension}"


def _oldest_first(job):
    year = job[3]
    return (-1, 0) if year is None else (0, year)


def write_years(jobs, model, log, cluster=None, locations=()):
    """Every year's class map (and confidence); progress spans them all, and a failure or cancel removes them all.
    With a cluster (analysis/distributed), its workers open each year's input from `locations` (paths or URLs)."""
    total = sum(raster.grid.width * raster.grid.height for raster, *_ in jobs)
    done, written = 0, []
    try:
        for (raster, output, confidence, year), location in zip(jobs, locations or [None] * len(jobs)):
            if log.is_cancelled():
                raise Cancelled()
            pixels = raster.grid.width * raster.grid.height
            start = done
            written.extend(filter(None, (output, confidence)))
            if len(jobs) > 1:
                log.info(f"Year {year if year is not None else '(INPUT)'}: {os.path.basename(output)}.")
            write_class_map(
                raster,
                model,
                output,
                confidence,
                log,
                lambda f, s=start, n=pixels: log.progress((s + f * n) / total),
                cluster,
                location,
            )
            done += pixels
    except BaseException:
        for path in written:
            remove_raster_files(path)
        raise


def remove_raster_files(path):
    """A raster this run wrote and what it wrote beside it (default style, GDAL's .aux.xml)."""
    for name in (path, path + ".aux.xml", os.path.splitext(path)[0] + ".qml"):
        if os.path.exists(name):
            os.remove(name)


def load_years_on_completion(context, jobs, class_names):
    """Each year's map is loaded, named by its year and styled, when OUTPUT is (OUTPUT_YEARS is no destination)."""
    output = jobs[0][1]
    if not context.willLoadLayerOnCompletion(output):
        return
    details = context.layerToLoadOnCompletionDetails(output)
    details.name = "Classes" if jobs[0][3] is None else f"Classes {jobs[0][3]}"
    details.setPostProcessor(ClassStyler.create(class_names))
    for _, path, _, year in jobs[1:]:
        year_details = QgsProcessingContext.LayerDetails(f"Classes {year}", details.project, details.outputName)
        year_details.layerTypeHint = details.layerTypeHint
        year_details.setPostProcessor(ClassStyler.create(class_names))
        context.addLayerToLoadOnCompletion(path, year_details)


def write_class_maps(algorithm, parameters, context, raster, model, log):
    """OUTPUT (classes 1..n, 0 = nodata, colour table and class names) and optional OUTPUT_CONFIDENCE."""
    output = algorithm.parameterAsOutputLayer(parameters, "OUTPUT", context)
    confidence = ""
    if parameters.get("OUTPUT_CONFIDENCE") not in (None, ""):
        confidence = algorithm.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
    write_class_map(raster, model, output, confidence, log, log.progress)
    outputs = {"OUTPUT": output}
    if confidence:
        outputs["OUTPUT_CONFIDENCE"] = confidence
    if context.willLoadLayerOnCompletion(output):
        details = context.layerToLoadOnCompletionDetails(output)
        details.name = "Classes"
        details.setPostProcessor(ClassStyler.create(model.class_names))
    return outputs


def write_class_map(raster, model, output, confidence, log, progress, cluster=None, location=None):
    """One raster's class map (and confidence when a path is given), with its palette and class names; on a Dask
    cluster when given one (its workers open `location`, the raster's path or URL)."""
    producer = classify.ClassRasters(raster, model)
    meta = provenance_metadata(raster.provenance)
    meta.update(GEOEMBED_ANALYSIS=f"{model.method} classifier", GEOEMBED_CLASSES="|".join(model.class_names))
    class_type = gdal.GDT_Byte if len(model.class_names) < 255 else gdal.GDT_UInt16
    specs = [OutputSpec(output, ("class",), class_type, 0, meta)]
    if confidence:
        specs.append(OutputSpec(confidence, ("confidence",), gdal.GDT_Float32, -1.0, meta))
    log.info(f"Classifying {raster.grid.width} x {raster.grid.height} pixels into {len(model.class_names)} classes.")
    try:
        if cluster is None:
            produce = lambda w: producer.produce(w)[: len(specs)]  # noqa: E731
            write_rasters(raster.grid, specs, produce, progress, log.is_cancelled, order=producer.order)
        else:
            outside = settings.allow_paths_outside_mirror()
            distributed.classify(cluster, location, outside, raster.grid, model, specs, log, progress)
    finally:
        producer.close()  # stops the read ahead before the caller closes the raster
    write_class_palette(output, model.class_names)


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


def cv_groups(xs, ys):
    """(spatial block of each sample, the reports' note on them) for the blocked cross-validation."""
    block = block_size(xs, ys)
    groups = classify.spatial_blocks(xs, ys, block)
    return groups, f"{len(np.unique(groups))} spatial blocks of {block:g} map units, grouped into up to 5 folds."


def natural_order(text):
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)
