"""geoembed:similarity - cosine similarity heatmap to query points/polygons, and the K best matches.

The examples may also come from a query file (analysis/query_file.py) saved by an earlier run with OUTPUT_QUERY.
"""

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import query_file
from ..analysis.distributed import jobs as distributed
from ..analysis.regions import feature_vectors
from ..analysis.similarity import SimilarityRaster, query_vector
from ..loaders.raster.writer import OutputSpec, provenance_metadata, write_rasters
from ..qgis_compat import FIELD_DOUBLE, FIELD_INT, NUMBER_INTEGER, SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON, WKB_POINT
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm
from .dask_cluster import add_cluster_parameters, cluster_settings
from .inputs import features_in, input_path, open_input, qgis_crs
from .styles import HeatmapStyler

GEOMETRIES = [SOURCE_VECTOR_POINT, SOURCE_VECTOR_POLYGON]


class SimilarityAlgorithm(GeoEmbedAlgorithm):
    NAME = "similarity"
    DISPLAY_NAME = "Similarity heatmap"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)
    HELP_PARTS = ("cluster",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "QUERY", self.tr("Examples (points or polygons; optional with a query file)"), GEOMETRIES, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource("NEGATIVE", self.tr("Counter-examples (optional)"), GEOMETRIES, optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "QUERY_FILE",
                self.tr("Saved query (examples and counter-examples as vectors)"),
                fileFilter=f"{query_file.FILE_FILTER};;All files (*)",
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterNumber("K", self.tr("Number of best matches"), NUMBER_INTEGER, 10, minValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Similarity")))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_MATCHES", self.tr("Best matches"), SOURCE_VECTOR_POINT, optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_QUERY",
                self.tr("Save the query (to run it on another area or year)"),
                fileFilter=query_file.FILE_FILTER,
                optional=True,
                createByDefault=False,
            )
        )
        add_cluster_parameters(self)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)
        saved_to = self._query_destination(parameters, context)
        raster = open_input(self, parameters, context, log)
        heatmap = None
        try:
            query = self._query(parameters, raster, context, feedback)
            positive = query_vector(query.examples)
            negative = query_vector(query.counter_examples) if len(query.counter_examples) else None
            k = self.parameterAsInt(parameters, "K", context)
            output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
            meta = provenance_metadata(raster.provenance)
            meta["GEOEMBED_ANALYSIS"] = "cosine similarity to the L2-normalised mean query vector" + (
                ", minus the similarity to the counter-examples" if negative is not None else ""
            )
            spec = OutputSpec(output, ("similarity",), metadata=meta)
            if cluster is None:
                heatmap = SimilarityRaster(raster, positive, negative, k)
                produce = lambda w: [heatmap.read(w)]  # noqa: E731
                write_rasters(raster.grid, [spec], produce, log.progress, log.is_cancelled, order=heatmap.order)
                top = heatmap.top
            else:  # workers open INPUT themselves
                source = input_path(self, parameters, "INPUT", context)
                outside = settings.allow_paths_outside_mirror()
                top = distributed.similarity(cluster, source, outside, raster.grid, positive, negative, k, spec, log)
        finally:
            # Closing the derived raster waits for its background read, then closes the input.
            (heatmap or raster).close()
        outputs = {"OUTPUT": output}
        if parameters.get("OUTPUT_MATCHES") not in (None, ""):
            outputs["OUTPUT_MATCHES"] = self._write_matches(parameters, context, raster.grid, top)
        if saved_to:
            outputs["OUTPUT_QUERY"] = query_file.save(saved_to, query)
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = "Similarity"
            details.setPostProcessor(HeatmapStyler.create())
        return outputs

    def _query_destination(self, parameters, context):
        """Where OUTPUT_QUERY goes ("" for none), its folder checked before any work is done."""
        if parameters.get("OUTPUT_QUERY") in (None, ""):
            return ""
        path = self.parameterAsFileOutput(parameters, "OUTPUT_QUERY", context)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise QgsProcessingException(f"Cannot write to {folder}; choose another OUTPUT_QUERY folder.")
        return path

    def _query(self, parameters, raster, context, feedback):
        """The examples and counter-examples of QUERY_FILE (if given) followed by those of QUERY and NEGATIVE."""
        path = self.parameterAsFile(parameters, "QUERY_FILE", context)
        saved = None
        if path:
            saved = query_file.load(path)
            saved.check_bands(raster.band_names)
        examples, example_places = self._vectors(parameters, "QUERY", raster, context, feedback, required=saved is None)
        counter, counter_places = self._vectors(parameters, "NEGATIVE", raster, context, feedback, required=False)
        provenance = raster.provenance
        here = query_file.Query(
            raster.band_names,
            examples,
            counter,
            example_places,
            counter_places,
            getattr(provenance, "product", None),
            getattr(provenance, "year", None),
        )
        return here if saved is None else saved.union(here)

    def _vectors(self, parameters, name, raster, context, feedback, required):
        """(vectors, lon/lat of each) of the features of a layer parameter; empty when it is not given."""
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            if required and name == "QUERY" and parameters.get(name) in (None, ""):
                raise QgsProcessingException("Give QUERY (examples) or QUERY_FILE (a query saved with OUTPUT_QUERY).")
            if required:
                raise QgsProcessingException(self.invalidSourceError(parameters, name))
            return [], []
        entries = features_in(source, raster.grid.crs, context, feedback)
        found = feature_vectors(raster, [geometry for _, geometry in entries])
        kept = [(vector, feature) for vector, (feature, _) in zip(found, entries) if vector is not None]
        if not kept:
            if not required and not entries:
                return [], []
            raise QgsProcessingException(f"No feature of {name} lies on a valid pixel of INPUT; check that they overlap.")
        skipped = len(entries) - len(kept)
        if skipped:
            FeedbackLog(feedback).warning(f"{skipped} feature(s) of {name} are outside INPUT or on nodata and were ignored.")
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        to_wgs84 = QgsCoordinateTransform(source.sourceCrs(), wgs84, context.transformContext())
        return [vector for vector, _ in kept], [_lonlat(feature, to_wgs84) for _, feature in kept]

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


def _lonlat(feature, to_wgs84):
    """Where a feature lies (its centroid) as (lon, lat); NaN when it cannot be placed on the globe."""
    try:
        point = to_wgs84.transform(feature.geometry().centroid().asPoint())
    except QgsCsException:
        return (float("nan"), float("nan"))
    return (point.x(), point.y())
