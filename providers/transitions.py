"""geoembed:transitions - what each class became between two class maps: a from -> to map, a matrix, a report."""

import dataclasses
import json

from osgeo import gdal
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
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import change, transitions
from ..analysis.resample import nearest
from ..loaders.raster.single_band import open_class_map
from ..loaders.raster.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from ..loaders.remote.locations import atomic_file, basename
from ..qgis_compat import (
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_LONGLONG,
    FIELD_STRING,
    SOURCE_VECTOR,
    WKB_NO_GEOMETRY,
)
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import input_path
from .styles import PaletteStyler, class_colour, write_palette

UNCHANGED_GREY = (200, 200, 200)


class TransitionsAlgorithm(GeoEmbedAlgorithm):
    NAME = "transitions"
    DISPLAY_NAME = "Transitions between two class maps"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT", "INPUT_2")  # files are read by open_class_map, which says what is wrong with them

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Class map, before (e.g. from Classify)")))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_2", self.tr("Class map, after")))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Transitions (from → to)")))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_TABLE", self.tr("Transition matrix (hectares and pixels)"), SOURCE_VECTOR, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_REPORT", self.tr("Transition report"), fileFilter="HTML (*.html)", optional=True, createByDefault=False
            )
        )
        for name, description in (
            ("CHANGED_PIXELS", "Pixels whose class changed"),
            ("VALID_PIXELS", "Pixels with a class in both maps"),
            ("CHANGED_AREA", "Changed area (hectares)"),
            ("CHANGED_FRACTION", "Changed fraction of the valid area (0..1)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        check_destination(output)  # before any reading
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) if parameters.get("OUTPUT_REPORT") else ""
        before = open_class_map(input_path(self, parameters, "INPUT", context), "INPUT")
        after = placed = None
        try:
            after = open_class_map(input_path(self, parameters, "INPUT_2", context), "INPUT_2")
            placed = self._on_grid(before, after, log)
            counted = transitions.Transitions(before, placed or after, before.class_names, after.class_names)
            feedback.setProgressText(self.tr("Counting transitions"))
            counted.count(lambda f: log.progress(0.5 * f), log.is_cancelled)
            if counted.valid_pixels == 0:
                raise QgsProcessingException(
                    "INPUT and INPUT_2 share no pixel with a class; check that they cover the same area."
                )
            entries = legend(counted, (before, after))
            feedback.setProgressText(self.tr("Writing the transition map"))
            self._write(output, before, after, counted, entries, log)
        finally:
            for raster in (before, after, placed):
                if raster is not None:
                    raster.close()
        summary = counted.summary()
        log.info(
            f"Changed: {summary['changed_pixels']} of {counted.valid_pixels} pixels, {change.area_text(summary['changed_m2'])}, "
            f"{100 * summary['changed_fraction']:.2f} % of the valid area ({change.area_text(summary['valid_m2'])}); "
            f"{len(counted.pairs)} from → to pairs over {len(counted.class_names)} classes."
        )
        outputs = {
            "OUTPUT": output,
            "CHANGED_PIXELS": summary["changed_pixels"],
            "VALID_PIXELS": counted.valid_pixels,
            "CHANGED_AREA": summary["changed_m2"] / 1e4,
            "CHANGED_FRACTION": summary["changed_fraction"],
        }
        if parameters.get("OUTPUT_TABLE") not in (None, ""):
            outputs["OUTPUT_TABLE"] = self._table(parameters, context, counted)
        if report:
            with atomic_file(report) as tmp, open(tmp, "w", encoding="utf-8") as out:
                out.write(transitions.report_html(counted, _label(before), _label(after)))
            outputs["OUTPUT_REPORT"] = report
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = "Transitions"
            details.setPostProcessor(PaletteStyler.create(entries))
        return outputs

    def _on_grid(self, before, after, log):
        """INPUT_2 on INPUT's grid (nearest: classes are never interpolated)."""
        if change.same_grid(before.grid, after.grid):
            return None
        if not change.overlaps(before.grid, after.grid):
            raise QgsProcessingException("INPUT and INPUT_2 do not overlap; give two class maps of the same area.")
        grid = before.grid
        log.info(
            f"INPUT_2 is on another grid: put on INPUT's grid ({grid.width} x {grid.height} pixels of {grid.res_x:g} "
            f"in {grid.crs}) with nearest neighbour."
        )
        return nearest(after, grid)

    def _write(self, output, before, after, counted, entries, log):
        meta = provenance_metadata(dataclasses.replace(before.provenance, year=None))
        meta["GEOEMBED_ANALYSIS"] = "class transitions from INPUT to INPUT_2"
        meta["GEOEMBED_TRANSITIONS"] = json.dumps(
            [[code, counted.class_names[f], counted.class_names[t]] for code, (f, t) in enumerate(counted.pairs, start=1)]
        )
        for key, raster in (("GEOEMBED_YEAR_FROM", before), ("GEOEMBED_YEAR_TO", after)):
            if raster.provenance.year is not None:
                meta[key] = str(raster.provenance.year)
        pairs = len(counted.pairs)
        data_type = gdal.GDT_Byte if pairs < 255 else gdal.GDT_UInt16 if pairs < 65535 else gdal.GDT_UInt32
        spec = OutputSpec(output, ("transition",), data_type, 0, meta)
        write_rasters(before.grid, [spec], counted.produce, lambda f: log.progress(0.5 + 0.5 * f), log.is_cancelled)
        write_palette(output, entries, "transitions")

    def _table(self, parameters, context, counted):
        """One row per from-class: its value and name, hectares to each class, then pixels to each class."""
        names = counted.class_names
        columns = unique_names(
            ["from_class", *(f"{n}_ha" for n in names), "total_ha", *(f"{n}_pixels" for n in names), "total_pixels"]
        )
        fields = QgsFields()
        # 32-bit counts where they fit: QGIS's CSV writer puts 64-bit integers in quotes, as if they were text
        count_kind = FIELD_INT if counted.pixels.sum() < 2**31 else FIELD_LONGLONG
        kinds = [FIELD_STRING] + [FIELD_DOUBLE] * (len(names) + 1) + [count_kind] * (len(names) + 1)
        for name, kind in zip(columns, kinds):
            fields.append(QgsField(name, kind))
        sink, destination = self.parameterAsSink(
            parameters, "OUTPUT_TABLE", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_TABLE"))
        ha = counted.m2 / 1e4
        for i, name in enumerate(names):
            feature = QgsFeature(fields)
            pixels = [int(v) for v in counted.pixels[i]]
            feature.setAttributes([name, *(float(v) for v in ha[i]), float(ha[i].sum()), *pixels, sum(pixels)])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return destination


def _label(raster):
    year = f" ({raster.provenance.year})" if raster.provenance.year is not None else ""
    return f"{basename(raster.location)}{year}"


def unique_names(names):
    """Field names made unique (a class named 'total' must not clash with the total column)."""
    seen, out = set(), []
    for name in names:
        candidate, n = name, 2
        while candidate.lower() in seen:
            candidate, n = f"{name}_{n}", n + 1
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def legend(counted, maps):
    """[(code, label, (r, g, b))]: changed pairs in distinct colours, unchanged ones muted (the class's colour washed
    into grey), so change stands out and what stayed is still recognisable."""
    entries, changed = [], 0
    for code, (f, t) in enumerate(counted.pairs, start=1):
        if f == t:
            source, value = counted.class_sources[f]
            colour = maps[source].colours.get(value) or class_colour(f + 1)
            muted = tuple(round(0.3 * c + 0.7 * g) for c, g in zip(colour, UNCHANGED_GREY))
            entries.append((code, counted.pair_label(code), muted))
        else:
            changed += 1
            entries.append((code, counted.pair_label(code), class_colour(changed)))
    return entries
