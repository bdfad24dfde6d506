"""geoembed:cluster - k-means classes of the embeddings (optionally k chosen by silhouette), as a paletted raster."""

import os

from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import cluster
from ..loaders.raster.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from ..qgis_compat import (
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_LONGLONG,
    FIELD_STRING,
    NUMBER_INTEGER,
    PARAMETER_ADVANCED,
    SOURCE_VECTOR,
    WKB_NO_GEOMETRY,
)
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import open_input
from .styles import ClassStyler, class_colour, write_class_palette

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
                NUMBER_INTEGER,
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
            NUMBER_INTEGER,
            50_000,
            minValue=10,
        )
        size.setFlags(size.flags() | PARAMETER_ADVANCED)
        self.addParameter(size)
        self.addParameter(QgsProcessingParameterNumber("SEED", self.tr("Random seed"), NUMBER_INTEGER, 0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Clusters")))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_CENTROIDS",
                self.tr("Cluster centroids (table)"),
                SOURCE_VECTOR,
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
            write_class_palette(output, names)
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
            details.setPostProcessor(ClassStyler.create(names))
        return outputs

    def _write_centroids(self, parameters, context, model, names, counts):
        """One row per cluster: class, label, colour, pixels in the raster, their share, then the centroid per band."""
        fields = QgsFields()
        for name, kind in zip(FIXED_FIELDS, (FIELD_INT, FIELD_STRING, FIELD_STRING, FIELD_LONGLONG, FIELD_DOUBLE)):
            fields.append(QgsField(name, kind))
        band_fields = [name if name not in FIXED_FIELDS else f"band_{name}" for name in model.band_names]
        for name in band_fields:
            fields.append(QgsField(name, FIELD_DOUBLE))
        sink, destination = self.parameterAsSink(
            parameters, "OUTPUT_CENTROIDS", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_CENTROIDS"))
        total = max(int(counts[1:].sum()), 1)
        for value, (name, centroid) in enumerate(zip(names, model.centroids), start=1):
            feature = QgsFeature(fields)
            attributes = [
                value,
                name,
                "#{:02x}{:02x}{:02x}".format(*class_colour(value)),
                int(counts[value]),
                float(counts[value] / total),
            ]
            feature.setAttributes(attributes + [float(v) for v in centroid])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return destination
