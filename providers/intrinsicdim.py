"""geoembed:intrinsicdim - how many dimensions an embedding layer really uses (PCA spectrum and TwoNN)."""

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import intrinsic
from ..analysis.pixel_sample import sample_pixels
from ..loaders.remote.locations import atomic_file
from ..qgis_compat import FIELD_DOUBLE, FIELD_INT, NUMBER_INTEGER, SOURCE_VECTOR, WKB_NO_GEOMETRY
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import open_input

MAX_SAMPLE = 100_000  # TwoNN is brute force: time grows with the square of the sample


class IntrinsicDimAlgorithm(GeoEmbedAlgorithm):
    NAME = "intrinsicdim"
    DISPLAY_NAME = "Intrinsic dimension"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterNumber(
                "SAMPLE_SIZE",
                self.tr("Random valid pixels to use"),
                NUMBER_INTEGER,
                intrinsic.DEFAULT_SAMPLE,
                minValue=intrinsic.MIN_POINTS,
                maxValue=MAX_SAMPLE,
            )
        )
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Explained variance"), SOURCE_VECTOR))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_PLOT", self.tr("Plot (HTML)"), fileFilter="HTML (*.html)", optional=True, createByDefault=False
            )
        )
        for name, description in (
            ("TWO_NN_DIM", "TwoNN intrinsic dimension (linear fit)"),
            ("TWO_NN_MLE", "TwoNN intrinsic dimension (maximum likelihood)"),
            ("PCA_DIM_90", "Components for 90 % of the variance"),
            ("PCA_DIM_95", "Components for 95 % of the variance"),
            ("PCA_DIM_99", "Components for 99 % of the variance"),
            ("SAMPLES", "Vectors sampled"),
            ("DUPLICATES", "Duplicate vectors dropped before TwoNN"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        size = self.parameterAsInt(parameters, "SAMPLE_SIZE", context)
        if not intrinsic.MIN_POINTS <= size <= MAX_SAMPLE:
            raise QgsProcessingException(f"SAMPLE_SIZE must be between {intrinsic.MIN_POINTS} and {MAX_SAMPLE}, got {size}.")
        raster = open_input(self, parameters, context, log)
        try:
            dims = raster.band_count
            product = raster.provenance.product
            feedback.setProgressText(self.tr("Sampling valid pixels"))
            samples, seen = sample_pixels(raster, size, progress=lambda f: log.progress(0.5 * f), is_cancelled=log.is_cancelled)
        finally:
            raster.close()
        if len(samples) < intrinsic.MIN_POINTS:
            raise QgsProcessingException(
                f"INPUT has only {len(samples)} valid pixels; an intrinsic dimension needs at least {intrinsic.MIN_POINTS}."
            )
        log.info(f"Sampled {len(samples)} of {seen} valid pixels ({dims} dimensions, {product}).")
        _, ratios, cumulative = intrinsic.pca_spectrum(samples)
        levels = {level: intrinsic.components_for(cumulative, level) for level in intrinsic.VARIANCE_LEVELS}
        unique, duplicates = intrinsic.distinct(samples)
        if duplicates:
            log.info(
                f"{duplicates} of {len(samples)} sampled vectors duplicate another one (common with quantised products); "
                "TwoNN uses each distinct vector once (a zero distance to the nearest neighbour has no ratio)."
            )
        if len(unique) < intrinsic.MIN_POINTS:
            raise QgsProcessingException(
                f"INPUT has only {len(unique)} distinct vectors in the sample; TwoNN needs at least {intrinsic.MIN_POINTS}."
            )
        feedback.setProgressText(self.tr("Nearest neighbours (TwoNN)"))
        r1, r2 = intrinsic.two_nearest(unique, lambda f: log.progress(0.5 + 0.45 * f), log.is_cancelled)
        estimate = intrinsic.two_nn(r1, r2)
        for level, count in levels.items():
            log.info(f"PCA: {count} of {dims} components explain {int(round(level * 100))} % of the variance.")
        log.info(
            f"TwoNN intrinsic dimension: {estimate['dimension']:.2f} (linear fit), {estimate['dimension_mle']:.2f} "
            f"(maximum likelihood), from {estimate['points']} distinct vectors."
        )
        plot = self.parameterAsFileOutput(parameters, "OUTPUT_PLOT", context) if parameters.get("OUTPUT_PLOT") else ""
        if plot:
            notes = [
                f"{len(samples)} valid pixels sampled at random (of {seen}), {dims} dimensions, product {product}.",
                f"{duplicates} duplicate vectors dropped before TwoNN." if duplicates else "No duplicate vectors in the sample.",
            ]
            title = f"Intrinsic dimension of {product}"
            with atomic_file(plot) as tmp, open(tmp, "w", encoding="utf-8") as out:
                out.write(intrinsic.plot_html(title, ratios, cumulative, levels, estimate, notes))
        try:
            table = self._write_table(parameters, context, ratios, cumulative)
        except BaseException:
            if plot and os.path.exists(plot):
                os.remove(plot)
            raise
        log.progress(1.0)
        outputs = {
            "OUTPUT": table,
            "TWO_NN_DIM": estimate["dimension"],
            "TWO_NN_MLE": estimate["dimension_mle"],
            "PCA_DIM_90": levels[0.90],
            "PCA_DIM_95": levels[0.95],
            "PCA_DIM_99": levels[0.99],
            "SAMPLES": len(samples),
            "DUPLICATES": duplicates,
        }
        if plot:
            outputs["OUTPUT_PLOT"] = plot
        return outputs

    def _write_table(self, parameters, context, ratios, cumulative):
        fields = QgsFields()
        fields.append(QgsField("component", FIELD_INT))
        fields.append(QgsField("explained_variance_ratio", FIELD_DOUBLE))
        fields.append(QgsField("cumulative", FIELD_DOUBLE))
        sink, destination = self.parameterAsSink(
            parameters, "OUTPUT", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        for index, (ratio, total) in enumerate(zip(ratios, cumulative), start=1):
            feature = QgsFeature(fields)
            feature.setAttributes([index, float(ratio), float(total)])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return destination
