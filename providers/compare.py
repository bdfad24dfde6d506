"""geoembed:compare - which of two embedding products separates the classes of a labelled layer better here."""

import os

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import classify, compare
from ..loaders.errors import Cancelled
from ..loaders.remote.locations import atomic_file
from ..qgis_compat import FIELD_DOUBLE, FIELD_INT, FIELD_STRING, NUMBER_DOUBLE, SOURCE_VECTOR, WKB_NO_GEOMETRY
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import features_in, input_path, open_input
from .train import MAX_PIXELS_PER_POLYGON, add_training_parameters, block_size, natural_order

HOW = {"none": "its own pixels (no resampling)", "nearest": "nearest neighbour", "aggregate": "aggregated (sum, L2-normalised)"}


class CompareAlgorithm(GeoEmbedAlgorithm):
    NAME = "compare"
    DISPLAY_NAME = "Compare two products on labelled data"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT", "INPUT_2")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("First product (layer, product file or folder)")))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_2", self.tr("Second product (layer, product file or folder)")))
        add_training_parameters(self)
        self.addParameter(
            QgsProcessingParameterNumber(
                "RESOLUTION",
                self.tr("Pixel size of the common grid (INPUT's CRS units; default: INPUT's grid)"),
                NUMBER_DOUBLE,
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Comparison table"), SOURCE_VECTOR))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_REPORT", self.tr("Comparison report"), fileFilter="HTML (*.html)", optional=True, createByDefault=True
            )
        )
        self.addOutput(QgsProcessingOutputString("BEST", self.tr("Product to use (INPUT, INPUT_2, or empty: no clear winner)")))
        for name, description in (
            ("ACCURACY", "Accuracy of INPUT"),
            ("ACCURACY_2", "Accuracy of INPUT_2"),
            ("MACRO_F1", "Macro F1 of INPUT"),
            ("MACRO_F1_2", "Macro F1 of INPUT_2"),
            ("P_VALUE", "McNemar p-value"),
            ("SAMPLES", "Samples"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        method = self.parameterAsEnumString(parameters, "METHOD", context) or "random_forest"
        classify.make_model(method)  # a missing scikit-learn is said before any work
        resolution = None
        if parameters.get("RESOLUTION") not in (None, ""):
            resolution = self.parameterAsDouble(parameters, "RESOLUTION", context)
            if resolution <= 0:
                raise QgsProcessingException(f"RESOLUTION must be greater than 0, got {resolution:g}.")
        source, field = self._training(parameters, context)
        rasters = [open_input(self, parameters, context, log)]
        try:
            rasters.append(open_input(self, parameters, context, log, "INPUT_2"))
            names = [self._name(parameters, context, key, r) for key, r in zip(("INPUT", "INPUT_2"), rasters)]
            grid = compare.common_grid(rasters[0], rasters[1], resolution)
            log.info(f"Common grid: {grid.width} x {grid.height} pixels of {grid.res_x:g} in {grid.crs}.")
            hows = []
            for key, raster in zip(("INPUT", "INPUT_2"), list(rasters)):
                moved, how = compare.on_grid(raster, grid)
                rasters.append(moved)
                hows.append(how)
                native = f"{raster.band_count} dimensions, pixels of {raster.grid.res_x:g} in {raster.grid.crs}"
                log.info(f"{key} ({native}): {HOW[how]}.")
            paired = compare.PairedRaster(rasters[2], rasters[3])
            feedback.setProgressText(self.tr("Sampling both products at the labelled locations"))
            first, second, labels, xs, ys, class_names = self._samples(source, field, paired, context, feedback)
            groups = classify.spatial_blocks(xs, ys, block_size(xs, ys))
            results = []
            for index, features in enumerate((first, second)):
                if feedback.isCanceled():
                    raise Cancelled()
                feedback.setProgressText(f"Cross-validating {names[index]}")
                results.extend(compare.evaluate([features], labels, groups, method, list(range(len(class_names)))))
                log.progress(0.5 * (index + 1))
        finally:
            for raster in rasters:
                raster.close()
        dims = [first.shape[1], second.shape[1]]
        only_first, only_second, p_value = compare.mcnemar(labels, results[0]["predicted"], results[1]["predicted"])
        best, answer = compare.verdict(names, dims, results, p_value, len(labels))
        for key, name, result in zip(("INPUT", "INPUT_2"), names, results):
            log.info(f"{key} {name}: accuracy {100 * result['accuracy']:.1f} %, macro F1 {result['macro_f1']:.3f}.")
        log.info(answer)
        counts = np.bincount(labels, minlength=len(class_names))
        report = ""
        if parameters.get("OUTPUT_REPORT") not in (None, ""):
            report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context)
        if report:
            notes = [
                f"Method: {method}. {len(np.unique(groups))} spatial blocks of {block_size(xs, ys):g} map units, grouped into "
                "up to 5 folds: the same folds for both products.",
                f"Common grid: {grid.width} x {grid.height} pixels of {grid.res_x:g} in {grid.crs}; samples are the pixels "
                "valid in both products.",
                f"Paired outcomes: {only_first} samples only {names[0]} got right, {only_second} only {names[1]}. McNemar's test "
                "treats samples as independent; neighbouring pixels are not, so with dense polygons the p-value is optimistic.",
            ]
            details = [
                ("Product", [r.provenance.product for r in rasters[:2]]),
                ("Year", [r.provenance.year or "" for r in rasters[:2]]),
                ("Dimensions", dims),
                ("Native pixel size", [f"{r.grid.res_x:g} in {r.grid.crs}" for r in rasters[:2]]),
                ("Onto the common grid", [HOW[h] for h in hows]),
            ]
            title = "GeoEmbed product comparison"
            page = compare.compare_html(title, names, details, class_names, counts, results, answer, notes)
            with atomic_file(report) as tmp, open(tmp, "w", encoding="utf-8") as out:
                out.write(page)
        try:
            table = self._write_table(parameters, context, rasters[:2], names, dims, hows, results, best, len(labels))
        except BaseException:
            if report and os.path.exists(report):
                os.remove(report)
            raise
        outputs = {
            "OUTPUT": table,
            "BEST": "" if best is None else ("INPUT", "INPUT_2")[best],
            "ACCURACY": results[0]["accuracy"],
            "ACCURACY_2": results[1]["accuracy"],
            "MACRO_F1": results[0]["macro_f1"],
            "MACRO_F1_2": results[1]["macro_f1"],
            "P_VALUE": p_value,
            "SAMPLES": len(labels),
        }
        if report:
            outputs["OUTPUT_REPORT"] = report
        return outputs

    def _training(self, parameters, context):
        source = self.parameterAsSource(parameters, "TRAINING", context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, "TRAINING"))
        field = self.parameterAsString(parameters, "FIELD", context)
        if source.fields().indexOf(field) < 0:
            raise QgsProcessingException(f"TRAINING has no field '{field}'; pick one of: {', '.join(source.fields().names())}.")
        return source, field

    def _name(self, parameters, context, key, raster):
        base = os.path.basename(str(input_path(self, parameters, key, context)).rstrip("/")) or key
        year = f" {raster.provenance.year}" if raster.provenance.year else ""
        return f"{raster.provenance.product}{year} ({base})"

    def _samples(self, source, field, paired, context, feedback):
        entries = [(f, g) for f, g in features_in(source, paired.grid.crs, context, feedback) if f[field] not in (None, "")]
        if not entries:
            raise QgsProcessingException("TRAINING has no labelled features; give points or polygons with a class in FIELD.")
        names = sorted({str(f[field]) for f, _ in entries}, key=natural_order)
        if len(names) < 2:
            raise QgsProcessingException(f"TRAINING has a single class ({names[0]}); a comparison needs at least two.")
        index = {name: i for i, name in enumerate(names)}
        first, second, labels, xs, ys = compare.paired_samples(
            paired, [g for _, g in entries], [index[str(f[field])] for f, _ in entries], MAX_PIXELS_PER_POLYGON
        )
        if len(labels) == 0:
            raise QgsProcessingException(
                "No TRAINING feature lies on a pixel valid in both INPUT and INPUT_2; check that they overlap."
            )
        present = np.unique(labels)
        if len(present) < 2:
            raise QgsProcessingException(
                f"Only the class {names[present[0]]} lies on pixels valid in both INPUT and INPUT_2; a comparison needs two."
            )
        dropped = [name for i, name in enumerate(names) if i not in set(present.tolist())]
        if dropped:
            FeedbackLog(feedback).warning(f"No sample of class(es) {', '.join(dropped)} lies on pixels valid in both; left out.")
        relabel = np.full(len(names), -1, dtype=np.int64)
        relabel[present] = np.arange(len(present))
        return first, second, relabel[labels], xs, ys, [names[i] for i in present]

    def _write_table(self, parameters, context, rasters, names, dims, hows, results, best, samples):
        fields = QgsFields()
        for name, kind in (
            ("input", FIELD_STRING),
            ("name", FIELD_STRING),
            ("product", FIELD_STRING),
            ("dims", FIELD_INT),
            ("resampling", FIELD_STRING),
            ("samples", FIELD_INT),
            ("accuracy", FIELD_DOUBLE),
            ("macro_f1", FIELD_DOUBLE),
            ("best", FIELD_INT),
        ):
            fields.append(QgsField(name, kind))
        sink, destination = self.parameterAsSink(
            parameters, "OUTPUT", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        for index, key in enumerate(("INPUT", "INPUT_2")):
            feature = QgsFeature(fields)
            feature.setAttributes(
                [
                    key,
                    names[index],
                    rasters[index].provenance.product,
                    int(dims[index]),
                    hows[index],
                    int(samples),
                    float(results[index]["accuracy"]),
                    float(results[index]["macro_f1"]),
                    int(best == index),
                ]
            )
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return destination
