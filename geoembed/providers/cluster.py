"""geoembed:cluster - k-means classes of the embeddings (optionally k chosen by silhouette), as a paletted raster."""

import colorsys
import os

from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsPalettedRasterRenderer,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant
from qgis.PyQt.QtGui import QColor

from ..analysis import cluster
from ..loaders.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import open_input
from .train import PALETTE

SAMPLE_SHARE = 0.4  # of the progress bar: the sampling pass (a full read); fitting, then the writing pass
FIT_SHARE = 0.05
FIXED_FIELDS = ("class", "label", "colour", "pixels", "share")


class ClusterAlgorithm(GeoEmbedAlgorithm):
    NAME = "cluster"
    DISPLAY_NAME = "Cluster (k-means)"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterNumber(
                "K",
                self.tr("Number of clusters (the largest tried with AUTO_K)"),
                QgsProcessingParameterNumber.Integer,
                8,
                minValue=2,
                maxValue=255,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean("AUTO_K", self.tr("Choose the number of clusters in 2..K by silhouette"), False)
        )
        size = QgsProcessingParameterNumber(
            "SAMPLE_SIZE",
            self.tr("Pixels sampled to fit the clusters"),
            QgsProcessingParameterNumber.Integer,
            50_000,
            minValue=10,
        )
        size.setFlags(size.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(size)
        self.addParameter(QgsProcessingParameterNumber("SEED", self.tr("Random seed"), QgsProcessingParameterNumber.Integer, 0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Clusters")))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_CENTROIDS",
                self.tr("Cluster centroids (table)"),
                QgsProcessing.TypeVector,
                optional=True,
                createByDefault=False,
            )
        )

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        k = self.parameterAsInt(parameters, "K", context)
        auto_k = self.parameterAsBoolean(parameters, "AUTO_K", context)
        size = self.parameterAsInt(parameters, "SAMPLE_SIZE", context)
        seed = self.parameterAsInt(parameters, "SEED", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        check_destination(output)  # before the sampling pass, which reads the whole raster
        raster = open_input(self, parameters, context, log)
        try:
            feedback.setProgressText(self.tr("Sampling valid pixels"))
            model = cluster.fit_raster(
                raster, k, auto_k, size, seed, progress=lambda f: log.progress(SAMPLE_SHARE * f), is_cancelled=log.is_cancelled
            )
            for candidate, score in model.scores.items():
                log.info(f"AUTO_K: k = {candidate}: silhouette {score:.4f}")
            if auto_k:
                log.info(
                    f"AUTO_K picked k = {model.k}, the highest silhouette (on up to {cluster.SILHOUETTE_SAMPLE} sampled pixels)."
                )
            log.info(
                f"{model.backend} (seed {seed}) fitted {model.k} clusters on {model.sample_size} sampled pixels "
                "(L2-normalised vectors, Euclidean distance); assigning every pixel to its nearest centroid."
            )
            log.progress(SAMPLE_SHARE + FIT_SHARE)
            producer = cluster.ClusterRaster(raster, model)
            names = [f"cluster {i}" for i in range(1, model.k + 1)]
            meta = provenance_metadata(raster.provenance)
            meta.update(
                GEOEMBED_ANALYSIS=f"k-means, k={model.k} ({model.backend}, seed {seed}) on L2-normalised vectors, "
                "nearest centroid by Euclidean distance; classes numbered by decreasing size",
                GEOEMBED_CLASSES="|".join(names),
            )
            start = SAMPLE_SHARE + FIT_SHARE
            feedback.setProgressText(self.tr("Assigning pixels to clusters"))
            write_rasters(
                raster.grid,
                [OutputSpec(output, ("cluster",), gdal.GDT_Byte, 0, meta)],
                producer.produce,
                lambda f: log.progress(start + (1 - start) * f),
                log.is_cancelled,
            )
        finally:
            raster.close()
        outputs = {"OUTPUT": output}
        try:
            add_cluster_palette(output, names)
            if parameters.get("OUTPUT_CENTROIDS") not in (None, ""):
                outputs["OUTPUT_CENTROIDS"] = self._write_centroids(parameters, context, model, names, producer.counts)
        except BaseException:  # all or nothing: no class raster without the table that was asked for
            for path in (output, os.path.splitext(output)[0] + ".qml", output + ".aux.xml"):
                if os.path.exists(path):
                    os.remove(path)
            raise
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = "Clusters"
            details.setPostProcessor(PaletteStyler.create(names))
        return outputs

    def _write_centroids(self, parameters, context, model, names, counts):
        """One row per cluster: class, label, colour, pixels in the raster, their share, then the centroid per band."""
        fields = QgsFields()
        for name, kind in zip(FIXED_FIELDS, (QVariant.Int, QVariant.String, QVariant.String, QVariant.LongLong, QVariant.Double)):
            fields.append(QgsField(name, kind))
        band_fields = [name if name not in FIXED_FIELDS else f"band_{name}" for name in model.band_names]
        for name in band_fields:
            fields.append(QgsField(name, QVariant.Double))
        sink, destination = self.parameterAsSink(
            parameters, "OUTPUT_CENTROIDS", context, fields, QgsWkbTypes.NoGeometry, QgsCoordinateReferenceSystem()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_CENTROIDS"))
        total = max(int(counts[1:].sum()), 1)
        for value, (name, centroid) in enumerate(zip(names, model.centroids), start=1):
            feature = QgsFeature(fields)
            attributes = [
                value,
                name,
                "#{:02x}{:02x}{:02x}".format(*colour(value)),
                int(counts[value]),
                float(counts[value] / total),
            ]
            feature.setAttributes(attributes + [float(v) for v in centroid])
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
        return destination


def colour(value):
    """RGB of class value 1..255: the class-map palette first, then golden-angle hues at alternating strengths."""
    if value <= len(PALETTE):
        return PALETTE[value - 1]
    hue = (value * 0.6180339887498949) % 1.0
    saturation, brightness = ((0.75, 0.9), (0.55, 0.7), (0.9, 0.6))[value % 3]
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, brightness))


def add_cluster_palette(path, names):
    """Colour table and category names in the GeoTIFF, and a default QGIS style with just the k clusters."""
    dataset = gdal.Open(path, gdal.GA_Update)
    band = dataset.GetRasterBand(1)
    table = gdal.ColorTable()
    table.SetColorEntry(0, (0, 0, 0, 0))
    for value in range(1, len(names) + 1):
        table.SetColorEntry(value, (*colour(value), 255))
    band.SetRasterColorTable(table)
    band.SetRasterCategoryNames(["nodata", *names])
    dataset = None
    layer = QgsRasterLayer(path, "clusters", "gdal")
    apply_palette(layer, names)
    layer.saveDefaultStyle()


def apply_palette(layer, names):
    """A paletted renderer with just the k clusters (from the colour table QGIS would list all 256 entries)."""
    classes = [QgsPalettedRasterRenderer.Class(value, QColor(*colour(value)), name) for value, name in enumerate(names, start=1)]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.triggerRepaint()


class PaletteStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies apply_palette() when Processing adds the output to the project (its loader ignores the default style)."""

    _instances = []  # Processing keeps a raw pointer: keep the Python objects alive

    def __init__(self, names):
        super().__init__()
        self.names = list(names)

    @classmethod
    def create(cls, names):
        styler = cls(names)
        cls._instances.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            apply_palette(layer, self.names)
