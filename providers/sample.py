"""geoembed:sample - embedding values at points, one field per dimension."""

import numpy as np
from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
    QgsWkbTypes,
)

from ..analysis.sampling import sample
from ..qgis_compat import FIELD_DOUBLE, SOURCE_VECTOR_POINT
from .base import FeedbackLog, GeoEmbedAlgorithm
from .geoparquet_output import write_points_parquet
from .inputs import features_in, open_input


class SampleAlgorithm(GeoEmbedAlgorithm):
    NAME = "sample"
    DISPLAY_NAME = "Sample embeddings at points"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(QgsProcessingParameterFeatureSource("POINTS", self.tr("Points"), [SOURCE_VECTOR_POINT]))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Sampled points (.parquet for GeoParquet)")))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        raster = open_input(self, parameters, context, log)
        try:
            source = self.parameterAsSource(parameters, "POINTS", context)
            if source is None:
                raise QgsProcessingException(self.invalidSourceError(parameters, "POINTS"))
            entries = features_in(source, raster.grid.crs, context, feedback)
            if not entries:
                raise QgsProcessingException("POINTS has no points; give a layer with point features.")
            xs = np.array([geometry[1][0] for _, geometry in entries])
            ys = np.array([geometry[1][1] for _, geometry in entries])
            feedback.setProgressText(self.tr("Reading the blocks under the points"))
            values, valid = sample(raster, xs, ys, is_cancelled=feedback.isCanceled)
        finally:
            raster.close()
        if not valid.any():
            raise QgsProcessingException("No point falls on a valid pixel of INPUT; check that POINTS and INPUT overlap.")
        if not valid.all():
            log.warning(f"{int((~valid).sum())} of {len(valid)} points fall outside INPUT or on nodata: their values are NULL.")
        band_names = _unique(list(raster.band_names), source.fields())  # never shadow an input field
        destination = self._destination(parameters, context)
        if destination.lower().endswith(".parquet"):
            write_points_parquet(destination, entries, source.fields(), band_names, values, valid, source.sourceCrs().toWkt())
            return {"OUTPUT": destination}
        fields = QgsFields(source.fields())
        for name in band_names:
            fields.append(QgsField(name, FIELD_DOUBLE))
        # One row per point: multi-point features are split into their points.
        point_type = QgsWkbTypes.singleType(source.wkbType())
        sink, destination = self.parameterAsSink(parameters, "OUTPUT", context, fields, point_type, source.sourceCrs())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        for index, (feature, _) in enumerate(entries):
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            extra = values[index].tolist() if valid[index] else [None] * len(band_names)
            out.setAttributes(feature.attributes() + extra)
            sink.addFeature(out, QgsFeatureSink.Flag.FastInsert)
            if index % 1000 == 0:
                feedback.setProgress(100.0 * index / len(entries))
        return {"OUTPUT": destination}

    def _destination(self, parameters, context):
        value = parameters.get("OUTPUT")
        sink = getattr(value, "sink", None)
        text = sink.staticValue() if sink is not None else value
        return text if isinstance(text, str) else ""


def _unique(names, fields):
    """Band names as field names, suffixed where an input field already has the name."""
    taken = {fields.at(i).name().lower() for i in range(fields.count())}
    out = []
    for name in names:
        candidate = name
        while candidate.lower() in taken:
            candidate += "_emb"
        taken.add(candidate.lower())
        out.append(candidate)
    return out
