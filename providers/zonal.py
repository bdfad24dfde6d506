"""geoembed:zonal - one embedding per polygon (field, parcel, building): the mean of the valid pixels under it."""

import json

import numpy as np
from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsWkbTypes,
)

from ..analysis.zonal import zonal_means
from ..loaders.catalog import has_unit_vectors
from ..loaders.errors import Cancelled
from ..loaders.products.geoparquet import pyarrow_parquet
from ..loaders.raster.rasterize import PolygonMask
from ..loaders.remote.locations import atomic_file
from ..qgis_compat import FIELD_DOUBLE, FIELD_LONGLONG, GEOMETRY_POLYGON, SOURCE_VECTOR_POLYGON
from .base import FeedbackLog, GeoEmbedAlgorithm
from .geoparquet_output import _plain, _projjson
from .inputs import open_input, qgis_crs
from .sample import _unique

STATISTICS = ("pixels", "spread")


class ZonalAlgorithm(GeoEmbedAlgorithm):
    NAME = "zonal"
    DISPLAY_NAME = "Embeddings per polygon (zonal mean)"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "ZONES", self.tr("Zones (polygons: fields, parcels, buildings)"), [SOURCE_VECTOR_POLYGON]
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                "ALL_TOUCHED",
                self.tr("Every pixel a polygon touches (default: the pixels whose centre is inside)"),
                defaultValue=False,
            )
        )
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Zones with embeddings (.parquet for GeoParquet)")))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_PARQUET",
                self.tr("Zones with embeddings as GeoParquet"),
                "GeoParquet (*.parquet)",
                optional=True,
                createByDefault=False,
            )
        )

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        all_touched = self.parameterAsBoolean(parameters, "ALL_TOUCHED", context)
        parquet = self.parameterAsFileOutput(parameters, "OUTPUT_PARQUET", context) if parameters.get("OUTPUT_PARQUET") else ""
        if parquet and not parquet.lower().endswith(".parquet"):
            raise QgsProcessingException(f"OUTPUT_PARQUET must be a GeoParquet file (.parquet), got {parquet}.")
        source = self.parameterAsSource(parameters, "ZONES", context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, "ZONES"))
        if QgsWkbTypes.geometryType(source.wkbType()) != GEOMETRY_POLYGON:
            kind = QgsWkbTypes.geometryDisplayString(QgsWkbTypes.geometryType(source.wkbType())).lower()
            raise QgsProcessingException(f"ZONES has {kind} features; give a polygon layer (fields, parcels or buildings).")
        raster = open_input(self, parameters, context, log)
        try:
            features, zones, unplaceable = _zones(source, raster.grid.crs, all_touched, context, feedback)
            if not features:
                raise QgsProcessingException("ZONES has no features; give a layer with polygons.")
            normalise = has_unit_vectors(raster.provenance.product)
            feedback.setProgressText(self.tr("Reading the pixels under each zone"))
            result = zonal_means(raster, zones, normalise, progress=log.progress, is_cancelled=log.is_cancelled)
            band_names = list(raster.band_names)
            product = raster.provenance.product
        finally:
            raster.close()
        self._report(result, unplaceable, all_touched, normalise, product, log)
        names = _unique([*STATISTICS, *band_names], source.fields())  # never shadow a zones field
        outputs = {}
        destination = self._destination(parameters)
        if destination.lower().endswith(".parquet"):
            outputs["OUTPUT"] = write_zones_parquet(destination, features, source, names, result)
        else:
            outputs["OUTPUT"] = self._write_sink(parameters, context, source, features, names, result)
        if parquet:
            outputs["OUTPUT_PARQUET"] = write_zones_parquet(parquet, features, source, names, result)
        if isinstance(outputs["OUTPUT"], str) and context.willLoadLayerOnCompletion(outputs["OUTPUT"]):
            context.layerToLoadOnCompletionDetails(outputs["OUTPUT"]).name = "Zonal embeddings"
        return outputs

    def _report(self, result, unplaceable, all_touched, normalise, product, log):
        empty = int((result.pixels == 0).sum())
        total = len(result.pixels)
        if empty == total:
            raise QgsProcessingException("No zone covers a valid pixel of INPUT; check that ZONES and INPUT overlap.")
        if unplaceable:
            log.warning(f"{unplaceable} zone(s) have coordinates that do not exist in their layer's CRS; check the layer's CRS.")
        if empty:
            hint = "" if all_touched else "; a polygon smaller than a pixel may hold no pixel centre: see ALL_TOUCHED"
            log.warning(
                f"{empty} of {total} zones cover no valid pixel of INPUT (outside it or on nodata{hint}): their pixels "
                "are 0 and their embedding fields NULL."
            )
        how = f"L2-normalised ({product} vectors are unit vectors)" if normalise else "not normalised"
        log.info(
            f"Mean embedding of {total - empty} zones from {int(result.pixels.sum())} pixels, {how}; median spread "
            f"{float(np.nanmedian(result.spread)) if np.isfinite(result.spread).any() else float('nan'):.4f}."
        )

    def _write_sink(self, parameters, context, source, features, names, result):
        fields = QgsFields(source.fields())
        fields.append(QgsField(names[0], FIELD_LONGLONG))
        for name in names[1:]:
            fields.append(QgsField(name, FIELD_DOUBLE))
        sink, destination = self.parameterAsSink(parameters, "OUTPUT", context, fields, source.wkbType(), source.sourceCrs())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        for index, feature in enumerate(features):
            out = QgsFeature(fields)
            out.setGeometry(feature.geometry())
            out.setAttributes(feature.attributes() + _statistics(result, index))
            sink.addFeature(out, QgsFeatureSink.Flag.FastInsert)
        return destination

    def _destination(self, parameters):
        value = parameters.get("OUTPUT")
        sink = getattr(value, "sink", None)
        text = sink.staticValue() if sink is not None else value
        return text if isinstance(text, str) else ""


class _Nowhere:
    """A zone without a place on the raster (no geometry, or coordinates its CRS cannot have)."""

    def blocks(self, grid, size):
        return []


def _zones(source, crs, all_touched, context, feedback):
    """(features, zones, unplaceable): every feature of ZONES and its polygon in the raster's CRS as a PolygonMask."""
    transform = QgsCoordinateTransform(source.sourceCrs(), qgis_crs(crs), context.transformContext())
    features, zones, unplaceable = [], [], 0
    for feature in source.getFeatures():
        if feedback.isCanceled():
            raise Cancelled()
        features.append(feature)
        geometry = feature.geometry()  # a copy: the feature keeps its own geometry for the output
        if geometry.isNull() or geometry.isEmpty():
            zones.append(_Nowhere())
            continue
        try:
            geometry.transform(transform)
        except QgsCsException:
            unplaceable += 1
            zones.append(_Nowhere())
            continue
        if QgsWkbTypes.isCurvedType(geometry.wkbType()):
            geometry = QgsGeometry(geometry.constGet().segmentize())
        zones.append(PolygonMask(bytes(geometry.asWkb()), all_touched))
    return features, zones, unplaceable


def _statistics(result, index):
    """[pixels, spread, band values...] of one zone, NULL (None) where undefined."""
    spread = result.spread[index]
    values = [None] * result.means.shape[1] if result.pixels[index] == 0 else result.means[index].tolist()
    return [int(result.pixels[index]), None if np.isnan(spread) else float(spread), *values]


def write_zones_parquet(path, features, source, names, result):
    """The zones (WKB geometry in their own CRS) with their attributes, pixels, spread and one float32 column per band."""
    import pyarrow as pa

    pq = pyarrow_parquet()
    fields = source.fields()
    columns = {}
    for index in range(fields.count()):
        columns[fields.at(index).name()] = [_plain(feature.attributes()[index]) for feature in features]
    columns[names[0]] = pa.array(result.pixels, type=pa.int64())
    columns[names[1]] = pa.array([None if np.isnan(v) else float(v) for v in result.spread], type=pa.float64())
    empty = result.pixels == 0
    for band, name in enumerate(names[2:]):
        columns[name] = pa.array(result.means[:, band].astype(np.float32), mask=empty, type=pa.float32())
    geometries, kinds, boxes = [], set(), []
    for feature in features:
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            geometries.append(None)
            continue
        geometries.append(bytes(geometry.asWkb()))
        kind = QgsWkbTypes.displayString(QgsWkbTypes.flatType(geometry.wkbType()))
        kinds.add(kind + (" Z" if geometry.constGet().is3D() else ""))
        boxes.append(geometry.boundingBox())
    columns["geometry"] = pa.array(geometries, type=pa.binary())
    column = {"encoding": "WKB", "geometry_types": sorted(kinds), "crs": _projjson(source.sourceCrs().toWkt())}
    if boxes:
        column["bbox"] = [
            min(b.xMinimum() for b in boxes),
            min(b.yMinimum() for b in boxes),
            max(b.xMaximum() for b in boxes),
            max(b.yMaximum() for b in boxes),
        ]
    geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": column}}
    table = pa.table(columns).replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path
