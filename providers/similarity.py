"""geoembed:similarity - cosine similarity heatmap to query points/polygons, and the K best matches."""

import numpy as np
from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis.regions import feature_vectors
from ..analysis.similarity import SimilarityRaster, query_vector
from ..loaders.raster.writer import OutputSpec, provenance_metadata, write_rasters
from ..qgis_compat import FIELD_DOUBLE, FIELD_INT, NUMBER_INTEGER, SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON, WKB_POINT
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import features_in, open_input, qgis_crs
from .styles import HeatmapStyler

GEOMETRIES = [SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON]


class SimilarityAlgorithm(GeoEmbedAlgorithm):
    NAME = "similarity"
    DISPLAY_NAME = "Similarity heatmap"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(QgsProcessingParameterFeatureSource("QUERY", self.tr("Examples (points or polygons)"), GEOMETRIES))
        self.addParameter(
            QgsProcessingParameterFeatureSource("NEGATIVE", self.tr("Counter-examples (optional)"), GEOMETRIES, optional=True)
        )
        self.addParameter(QgsProcessingParameterNumber("K", self.tr("Number of best matches"), NUMBER_INTEGER, 10, minValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Similarity")))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_MATCHES", self.tr("Best matches"), SOURCE_VECTOR_POINT, optional=True, createByDefault=False
            )
        )

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        raster = open_input(self, parameters, context, log)
        heatmap = None
        try:
            query = self._mean_vector(parameters, "QUERY", raster, context, feedback, required=True)
            negative = self._mean_vector(parameters, "NEGATIVE", raster, context, feedback, required=False)
            k = self.parameterAsInt(parameters, "K", context)
            heatmap = SimilarityRaster(raster, query, negative, k)
            output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
            meta = provenance_metadata(raster.provenance)
            meta["GEOEMBED_ANALYSIS"] = "cosine similarity to the L2-normalised mean query vector" + (
                ", minus the similarity to the counter-examples" if negative is not None else ""
            )
            spec = OutputSpec(output, ("similarity",), metadata=meta)
            write_rasters(raster.grid, [spec], lambda w: [heatmap.read(w)], log.progress, log.is_cancelled)
        finally:
            # Closing the derived raster waits for its background read, then closes the input.
            (heatmap or raster).close()
        outputs = {"OUTPUT": output}
        if parameters.get("OUTPUT_MATCHES") not in (None, ""):
            outputs["OUTPUT_MATCHES"] = self._write_matches(parameters, context, raster.grid, heatmap.top)
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = "Similarity"
            details.setPostProcessor(HeatmapStyler.create())
        return outputs

    def _mean_vector(self, parameters, name, raster, context, feedback, required):
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            if required:
                raise QgsProcessingException(self.invalidSourceError(parameters, name))
            return None
        entries = features_in(source, raster.grid.crs, context, feedback)
        vectors = [v for v in feature_vectors(raster, [geometry for _, geometry in entries]) if v is not None]
        if not vectors:
            if not required and not entries:
                return None
            raise QgsProcessingException(f"No feature of {name} lies on a valid pixel of INPUT; check that they overlap.")
        skipped = len(entries) - len(vectors)
        if skipped:
            FeedbackLog(feedback).warning(f"{skipped} feature(s) of {name} are outside INPUT or on nodata and were ignored.")
        return query_vector(np.array(vectors))

    def _write_matches(self, parameters, context, grid, top):
        fields = QgsFields()
        fields.append(QgsField("rank", FIELD_INT))
        fields.append(QgsField("score", FIELD_DOUBLE))
        sink, destination = self.parameterAsSink(parameters, "OUTPUT_MATCHES", context, fields, WKB_POINT, qgis_crs(grid.crs))
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_MATCHES"))
        for rank, (score, row, col) in enumerate(zip(top.scores, top.rows, top.cols), start=1):
            feature = QgsFeature(fields)
            x = grid.x0 + (col + 0.5) * grid.res_x
            y = grid.y0 - (row + 0.5) * grid.res_y
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
            feature.setAttributes([rank, float(score)])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return destination
