"""geoembed:detect - objects (connected components) of a thresholded score raster or of chosen classes, as polygons."""

import os
import re
import shutil
import tempfile

from osgeo import gdal
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsFillSymbol,
    QgsGeometry,
    QgsGraduatedSymbolRenderer,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsRendererCategory,
    QgsRendererRange,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from ..analysis import detect
from ..analysis.change import area_text
from ..loaders.errors import Cancelled
from ..loaders.model import EmbeddingBlock
from ..loaders.raster import polygons
from ..loaders.raster.single_band import SingleBandRaster
from ..loaders.raster.writer import OutputSpec, write_rasters
from ..qgis_compat import (
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_LONGLONG,
    FIELD_STRING,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    SOURCE_VECTOR_POLYGON,
    WKB_MULTIPOLYGON,
)
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import input_path, qgis_crs
from .styles import LayerStyler, blue_magenta_yellow_ramp, class_colour

CANCEL_EVERY = 500  # features written between two looks at the Cancel button


class DetectAlgorithm(GeoEmbedAlgorithm):
    NAME = "detect"
    DISPLAY_NAME = "Detect objects"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)  # a folder or a product file gets detect's own message, not QGIS's

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterRasterLayer("INPUT", self.tr("Scores (a similarity heatmap, a confidence raster) or class map"))
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "THRESHOLD", self.tr("Threshold: pixels scoring at least this are objects"), NUMBER_DOUBLE, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                "CLASSES", self.tr("Classes of a class map, e.g. 2,5 or water,forest (instead of THRESHOLD)"), optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber("MIN_AREA", self.tr("Smallest object (m²)"), NUMBER_DOUBLE, 0.0, minValue=0.0)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "CONNECTIVITY", self.tr("Connectivity (4: edges only, 8: corners too)"), NUMBER_INTEGER, 8, minValue=4, maxValue=8
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MAX_OBJECTS", self.tr("Keep the best N objects only (empty: all)"), NUMBER_INTEGER, optional=True, minValue=1
            )
        )
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Objects"), SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber("OBJECTS", self.tr("Number of objects")))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        connectivity = self.parameterAsInt(parameters, "CONNECTIVITY", context)
        if connectivity not in detect.CONNECTIVITIES:
            raise QgsProcessingException(f"CONNECTIVITY must be 4 (edges) or 8 (edges and corners), got {connectivity}.")
        min_area = self.parameterAsDouble(parameters, "MIN_AREA", context)
        max_objects = self.parameterAsInt(parameters, "MAX_OBJECTS", context) if _given(parameters, "MAX_OBJECTS") else None
        classes_text = self.parameterAsString(parameters, "CLASSES", context).strip() if _given(parameters, "CLASSES") else ""
        threshold = self.parameterAsDouble(parameters, "THRESHOLD", context) if _given(parameters, "THRESHOLD") else None
        if not classes_text and threshold is None:
            raise QgsProcessingException(
                "Give THRESHOLD (pixels scoring at least this are objects), or CLASSES to take classes of a class map."
            )
        raster = open_single_band(input_path(self, parameters, "INPUT", context), bool(classes_text))
        scratch = None
        try:
            if classes_text:
                if threshold is not None:
                    log.info("THRESHOLD is not used: CLASSES picks the pixels.")
                selection = detect.Selection(classes=parse_classes(classes_text, raster))
            else:
                selection = detect.Selection(threshold=threshold)
            labeller = detect.ComponentLabeller(raster, selection, connectivity, min_area, max_objects)
            feedback.setProgressText(self.tr("Finding the objects"))
            found = labeller.find(lambda f: log.progress(0.45 * f), log.is_cancelled)
            self._check_found(labeller, selection, raster, log)
            self._report(labeller, found, min_area, max_objects, log)
            if len(found):
                scratch = tempfile.mkdtemp(prefix="geoembed-detect-", dir=QgsProcessingUtils.tempFolder())
                gpkg = self._polygons(labeller, raster, scratch, feedback, log)
            fields = object_fields(bool(selection.classes))
            sink, destination = self.parameterAsSink(
                parameters, "OUTPUT", context, fields, WKB_MULTIPOLYGON, qgis_crs(raster.grid.crs)
            )
            if sink is None:
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
            if len(found):
                feedback.setProgressText(self.tr("Writing the objects"))
                try:
                    self._write(sink, fields, found, selection, raster, gpkg, log)
                except BaseException:
                    sink = None
                    remove_destination(destination)
                    raise
        finally:
            raster.close()
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        if context.willLoadLayerOnCompletion(destination):
            details = context.layerToLoadOnCompletionDetails(destination)
            details.name = "Objects"
            if selection.classes:
                legend = [(value, class_label(raster, value)) for value in selection.classes]
                details.setPostProcessor(ObjectStyler.create("class", legend))
            elif len(found):
                scores = (float(found.max_score.min()), float(found.max_score.max()))
                details.setPostProcessor(ObjectStyler.create("max_score", scores))
        return {"OUTPUT": destination, "OBJECTS": len(found)}

    def _check_found(self, labeller, selection, raster, log):
        """One-line refusals when nothing was selected at all; a warning when some CLASSES have no pixel."""
        if labeller.valid_pixels == 0:
            raise QgsProcessingException(f"INPUT {raster.name} has no valid pixel (all nodata); check the raster.")
        if selection.classes:
            seen = labeller.values_seen if raster.is_integer and len(labeller.values_seen) <= 1000 else None
            missing = [v for v in selection.classes if seen is not None and v not in seen]
            if labeller.selected_pixels == 0 or len(missing) == len(selection.classes):
                listing = ", ".join(str(int(v)) for v in sorted(seen)[:20]) if seen else "none"
                raise QgsProcessingException(
                    f"No pixel of INPUT has CLASSES {', '.join(str(v) for v in selection.classes)} (its classes: "
                    f"{class_listing(raster) or listing}); pick classes that are in the map."
                )
            if missing:
                absent = ", ".join(str(v) for v in missing)
                log.warning(f"No pixel of INPUT has class {absent}; objects of the other classes follow.")
        elif labeller.selected_pixels == 0:
            raise QgsProcessingException(
                f"No pixel of INPUT reaches THRESHOLD {selection.threshold:g} (its highest value is {labeller.highest:.6g}); "
                "lower THRESHOLD."
            )

    def _report(self, labeller, found, min_area, max_objects, log):
        dropped = []
        if min_area > 0:
            dropped.append(f"those under MIN_AREA {min_area:g} m² dropped")
        if max_objects and len(found) == max_objects:
            dropped.append(f"the best {max_objects} kept")
        note = f" ({'; '.join(dropped)})" if dropped else ""
        total = float(found.area_m2.sum()) if len(found) else 0.0
        log.info(f"{len(found)} object(s) of {labeller.selected_pixels} selected pixels{note}, covering {area_text(total)}.")
        if not len(found):
            log.warning(f"No object is as large as MIN_AREA {min_area:g} m²; the layer is empty: lower MIN_AREA.")

    def _polygons(self, labeller, raster, scratch, feedback, log):
        """The rank raster (pass 2) into a scratch GeoTIFF, then its polygons into a scratch GeoPackage."""
        label_path = os.path.join(scratch, "objects.tif")
        spec = OutputSpec(label_path, ("object",), gdal.GDT_UInt32, 0)
        feedback.setProgressText(self.tr("Labelling the objects"))

        def produce(window):
            ranks = labeller.rank_labels(window)
            return [EmbeddingBlock(ranks, ranks > 0)]

        try:
            write_rasters(raster.grid, [spec], produce, lambda f: log.progress(0.45 + 0.2 * f), log.is_cancelled, labeller.block)
        finally:
            labeller.close()
        feedback.setProgressText(self.tr("Tracing their outlines"))
        gpkg = os.path.join(scratch, "objects.gpkg")
        return polygons.polygonize(label_path, gpkg, lambda f: log.progress(0.65 + 0.2 * f), log.is_cancelled)

    def _write(self, sink, fields, found, selection, raster, gpkg, log):
        total = len(found)
        for done, (rank, shape) in enumerate(polygons.objects_in_order(gpkg), start=1):
            if done % CANCEL_EVERY == 0:
                if log.is_cancelled():
                    raise Cancelled()
                log.progress(0.85 + 0.15 * done / total)
            i = rank - 1
            area = float(found.area_m2[i])
            values = [rank, int(found.pixels[i]), area, area / 1e4]
            if selection.classes:
                value = selection.classes[found.key[i] - 1]
                values += [int(value), class_label(raster, value)]
            else:
                values += [float(found.max_score[i]), float(found.mean_score[i])]
            geometry = QgsGeometry()
            geometry.fromWkb(bytes(shape.ExportToIsoWkb()))
            feature = QgsFeature(fields)
            feature.setGeometry(geometry)
            feature.setAttributes(values)
            if not sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert):
                raise QgsProcessingException("Writing the objects failed; check OUTPUT and the free disk space.")
        log.progress(1.0)


def _given(parameters, name):
    return parameters.get(name) not in (None, "")


def open_single_band(path, want_classes):
    """INPUT as a SingleBandRaster; a folder or a multi-band raster (embeddings) is refused with what to do instead."""
    what = "a class map of one band (e.g. from geoembed:train)" if want_classes else "a single-band score raster"
    hint = (
        "give the class map made by geoembed:train or geoembed:classify"
        if want_classes
        else "run geoembed:similarity first and give its heatmap as INPUT"
    )
    if os.path.isdir(path):
        raise QgsProcessingException(f"INPUT {path} is a folder; detect takes {what}: {hint}.")
    raster = SingleBandRaster(path)
    if raster.band_count != 1:
        count = raster.band_count
        raster.close()
        raise QgsProcessingException(f"INPUT {raster.name} has {count} bands (embeddings?); detect takes {what}: {hint}.")
    return raster


def parse_classes(text, raster):
    """CLASSES ('2,5', 'water; forest') as class values; names are the map's class names. Unknown ones are refused."""
    values = []
    names = {name.lower(): value for value, name in raster.class_names.items()}
    for token in (t for t in re.split(r"[,;\s]+", text) if t):
        if re.fullmatch(r"[+-]?\d+", token):
            value = int(token)
            if raster.nodata is not None and value == raster.nodata:
                raise QgsProcessingException(
                    f"CLASSES {value} is INPUT's nodata value; pick classes of the map ({class_listing(raster)})."
                )
            if raster.class_names and value not in raster.class_names:
                raise QgsProcessingException(f"CLASSES {value} is not a class of INPUT; its classes: {class_listing(raster)}.")
        elif token.lower() in names:
            value = names[token.lower()]
        else:
            known = class_listing(raster) or "it has no class names: give class values"
            raise QgsProcessingException(f"CLASSES '{token}' is not a class of INPUT; its classes: {known}.")
        if value not in values:
            values.append(value)
    return tuple(values)


def class_listing(raster):
    """'1 water, 2 forest' (the first 20), or '' for a map without class names."""
    items = sorted(raster.class_names.items())
    text = ", ".join(f"{value} {name}" for value, name in items[:20])
    return text + (", ..." if len(items) > 20 else "")


def class_label(raster, value):
    return raster.class_names.get(value, str(value))


def object_fields(for_classes):
    fields = QgsFields()
    fields.append(QgsField("rank", FIELD_INT))
    fields.append(QgsField("pixels", FIELD_LONGLONG))
    fields.append(QgsField("area_m2", FIELD_DOUBLE))
    fields.append(QgsField("area_ha", FIELD_DOUBLE))
    if for_classes:
        fields.append(QgsField("class", FIELD_INT))
        fields.append(QgsField("class_name", FIELD_STRING))
    else:
        fields.append(QgsField("max_score", FIELD_DOUBLE))
        fields.append(QgsField("mean_score", FIELD_DOUBLE))
    return fields


def remove_destination(destination):
    """Remove an output file whose writing failed (a sink's file path, options after '|' dropped)."""
    path = str(destination).split("|")[0]
    if path and os.path.isfile(path):
        os.remove(path)


# --- style ------------------------------------------------------------------------------------------------------

SCORE_CLASSES = 5


def fill(colour, alpha=150):
    return QgsFillSymbol.createSimple(
        {
            "color": f"{colour.red()},{colour.green()},{colour.blue()},{alpha}",
            "outline_color": "35,35,35,255",
            "outline_width": "0.3",
        }
    )


def score_renderer(low, high):
    """Objects filled by their highest score (the similarity heatmap's ramp), outlined."""
    ramp = blue_magenta_yellow_ramp()
    count = SCORE_CLASSES if high > low else 1
    step = (high - low) / count
    ranges = []
    for index in range(count):
        lower, upper = low + index * step, high if index == count - 1 else low + (index + 1) * step
        colour = ramp.color((index + 0.5) / count if count > 1 else 1.0)
        ranges.append(QgsRendererRange(lower, upper, fill(colour), f"{lower:.3g} – {upper:.3g}"))
    return QgsGraduatedSymbolRenderer("max_score", ranges)


def class_renderer(legend):
    """Objects filled with their class's colour (as geoembed:train colours the class map), outlined."""
    categories = [QgsRendererCategory(int(value), fill(QColor(*class_colour(int(value)))), name) for value, name in legend]
    return QgsCategorizedSymbolRenderer("class", categories)


class ObjectStyler(LayerStyler):
    """Applies score_renderer() or class_renderer() when Processing adds the objects to the project."""

    def __init__(self, field, spec):
        super().__init__()
        self.field, self.spec = field, spec

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsVectorLayer):
            return
        layer.setRenderer(class_renderer(self.spec) if self.field == "class" else score_renderer(*self.spec))
        layer.triggerRepaint()
