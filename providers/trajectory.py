"""geoembed:trajectory - change over N years per pixel: consecutive cosine distances, the largest break, anomalies."""

import os

from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsMapLayer,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
    QgsRasterLayer,
)

from ..analysis import change, trajectory
from ..analysis.distributed.trajectory_job import TrajectoryJob
from ..analysis.resample import nearest
from ..loaders.errors import GeoEmbedError
from ..loaders.open import open_embeddings
from ..loaders.raster.gdal_io import open_raster
from ..loaders.raster.writer import GEOTIFF_EXTENSIONS, OutputSpec, check_destination, provenance_metadata, write_rasters
from ..loaders.remote.locations import is_url
from ..qgis_compat import (
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_LONGLONG,
    FIELD_STRING,
    NUMBER_DOUBLE,
    SOURCE_RASTER,
    SOURCE_VECTOR,
    WKB_NO_GEOMETRY,
    save_default_style,
)
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm
from .change import fixed_threshold, warn_unless_separable
from .dask_cluster import add_cluster_parameters, cluster_settings
from .inputs import layer_location
from .styles import PaletteStyler, RampStyler, apply_palette, blue_magenta_yellow_ramp

RASTER_OUTPUTS = (  # parameter, what produce() calls it, description
    ("OUTPUT", "distance", "Cosine distance between consecutive years (one band per pair)"),
    ("OUTPUT_BREAK_YEAR", "break_year", "Year of the largest change (the later year of the pair)"),
    ("OUTPUT_BREAK_SIZE", "break_size", "Size of the largest change (cosine distance)"),
    ("OUTPUT_ANOMALY", "anomaly", "Anomaly: distance of each year to the pixel's mean direction (one band per year)"),
)
LAYER_NAMES = {
    "OUTPUT": "Trajectory (consecutive cosine distances)",
    "OUTPUT_BREAK_YEAR": "Trajectory: year of the largest change",
    "OUTPUT_BREAK_SIZE": "Trajectory: size of the largest change",
    "OUTPUT_ANOMALY": "Trajectory: anomaly per year",
}


class TrajectoryAlgorithm(GeoEmbedAlgorithm):
    NAME = "trajectory"
    DISPLAY_NAME = "Trajectory over several years"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)
    HELP_PARTS = ("cluster",)

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUT",
                self.tr("Embeddings, one raster per year of the same product (layers, product files or folders)"),
                SOURCE_RASTER,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "THRESHOLD",
                self.tr("Change threshold on the cosine distance (0..2; empty or negative: automatic, Otsu)"),
                NUMBER_DOUBLE,
                optional=True,
            )
        )
        for name, _, description in RASTER_OUTPUTS:
            optional = name != "OUTPUT"
            self.addParameter(
                QgsProcessingParameterRasterDestination(
                    name, self.tr(description), optional=optional, createByDefault=not optional
                )
            )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_TABLE",
                self.tr("Changed area per pair of years (table)"),
                SOURCE_VECTOR,
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputString("YEARS", self.tr("Years, in the order used (comma separated)")))
        for name, description in (
            ("USED_THRESHOLD", "Threshold used"),
            ("CHANGED_PIXELS", "Pixels changed between at least one pair of years"),
            ("VALID_PIXELS", "Pixels valid in at least one pair of years"),
            ("CHANGED_AREA", "Area changed between at least one pair of years (hectares)"),
            ("CHANGED_FRACTION", "Changed fraction of the valid area (0..1)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))
        add_cluster_parameters(self)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)
        threshold = fixed_threshold(self, parameters, context)
        paths = {}
        for name, _, _ in RASTER_OUTPUTS:
            if name == "OUTPUT" or parameters.get(name):
                paths[name] = self.parameterAsOutputLayer(parameters, name, context)
        paths = {name: path for name, path in paths.items() if path}
        for path in paths.values():
            check_destination(path)  # before any reading
        want_table = parameters.get("OUTPUT_TABLE") not in (None, "")
        sources = self._sources(parameters, context)
        if len(sources) < 2:
            raise QgsProcessingException(
                f"INPUT has {len(sources)} raster(s); give two or more years of the same product (INPUT once per year)."
            )
        rasters, series, job = [], None, None
        outside = settings.allow_paths_outside_mirror()
        try:
            for source in sources:
                rasters.append(open_embeddings(source, log, allow_paths_outside_mirror=outside))
            opened = {id(raster): (source, raster.grid) for raster, source in zip(rasters, sources)}
            rasters, labels = self._ordered(rasters, sources, log)
            located = [opened[id(raster)] for raster in rasters]  # in year order, as opened: what the workers open
            rasters = self._on_first_grid(rasters, labels, log)
            series = trajectory.Trajectory(
                rasters, labels, trajectory.scratch_path_for(paths["OUTPUT"]), with_anomaly="OUTPUT_ANOMALY" in paths
            )
            if cluster is not None:  # the workers open every year themselves; series gets their counts
                job_sources, job_grids = zip(*located)
                job = TrajectoryJob(cluster, series, job_sources, job_grids, outside, paths["OUTPUT"], log)
            feedback.setProgressText(self.tr("Cosine distances"))
            (job or series).compute(lambda f: log.progress(0.6 * f), log.is_cancelled)
            if series.valid_pixels == 0:
                raise QgsProcessingException(
                    "No pixel is valid in two consecutive years; check that the rasters cover the same area."
                )
            if threshold is None:
                threshold, separability = series.automatic_threshold()
                pairs = int(series.counts.sum())
                log.info(f"Automatic threshold (Otsu on {pairs} consecutive distances): {threshold:.4f}.")
                warn_unless_separable(log, separability)
            series.threshold = threshold
            ramp_top = max(series.percentile(99.0), 2 * threshold, 1e-3)
            try:
                self._write(rasters[0], series, paths, log, feedback, job)
                table = self._write_table(parameters, context, series) if want_table else None
            except BaseException:  # all or nothing: no rasters without the table that was asked for
                remove_outputs(paths.values())
                raise
        finally:
            if job is not None:
                job.close()  # its pieces, and the local workers it started
            if series is not None:
                series.close()
            for raster in rasters:
                raster.close()
        return self._results(context, series, labels, paths, table, ramp_top, log)

    def _sources(self, parameters, context):
        """The file, folder or URL behind each INPUT item; a folder of GeoEmbed GeoTIFFs (geoembed:load with YEARS)
        gives each of them, any other folder is one product."""
        value = parameters.get("INPUT")
        items = list(value) if isinstance(value, (list, tuple)) else ([value] if value not in (None, "") else [])
        sources = []
        for item in items:
            if isinstance(item, QgsMapLayer):
                sources.append(layer_location(item.source()))
                continue
            text = str(item)
            if os.path.isdir(text):
                sources.extend(geoembed_rasters_in(text) or [text])
            elif is_url(text) or os.path.isfile(text):
                sources.append(text)
            else:
                layer = QgsProcessingUtils.mapLayerFromString(text, context)
                if layer is None:
                    raise QgsProcessingException(f"INPUT {text} does not exist; give embedding layers, product files or folders.")
                sources.append(layer_location(layer.source()))
        return sources

    def _ordered(self, rasters, sources, log):
        """(rasters, labels) in year order, or in the order given when a year is unknown (said in the log)."""
        names = [os.path.basename(str(source).rstrip("/")) or str(source) for source in sources]
        years = [raster.provenance.year for raster in rasters]
        order, labels, by_year = trajectory.year_order(years, names)
        if by_year:
            log.info(f"Years: {', '.join(f'{labels[i]} ({names[k]})' for i, k in enumerate(order))}.")
        else:
            unknown = ", ".join(name for name, year in zip(names, years) if year is None)
            log.warning(
                f"No year known for {unknown} (no GEOEMBED_YEAR): the rasters are taken in the order given, and pairs "
                f"and break years are numbered by position 1..{len(rasters)} instead of years."
            )
        return [rasters[i] for i in order], labels

    def _on_first_grid(self, rasters, labels, log):
        """Every raster on the first one's grid (nearest neighbour), after refusing other bands or no overlap."""
        first, out = rasters[0], [rasters[0]]
        for index, raster in enumerate(rasters[1:], start=1):
            change.check_same_bands(first, raster, f"INPUT {labels[0]}", f"INPUT {labels[index]}")
            if raster.provenance.product != first.provenance.product:
                log.warning(
                    f"{labels[0]} is {first.provenance.product} and {labels[index]} {raster.provenance.product}: their "
                    "bands have the same names, but distances between different products mean little."
                )
            if not change.overlaps(first.grid, raster.grid):
                raise QgsProcessingException(f"{labels[index]} does not overlap {labels[0]}; give rasters of the same area.")
            if not change.same_grid(first.grid, raster.grid):
                grid = first.grid
                log.info(
                    f"{labels[index]} is on another grid: put on {labels[0]}'s grid ({grid.width} x {grid.height} pixels "
                    f"of {grid.res_x:g} in {grid.crs}) with nearest neighbour."
                )
                raster = nearest(raster, grid)
            out.append(raster)
        return out

    def _write(self, first, series, paths, log, feedback, job=None):
        meta = provenance_metadata(first.provenance)
        meta.pop("GEOEMBED_YEAR", None)  # several years: GEOEMBED_YEARS
        meta["GEOEMBED_YEARS"] = ",".join(str(label) for label in series.labels)
        meta["GEOEMBED_CHANGE_THRESHOLD"] = f"{series.threshold:.6g}"
        bands = {
            "distance": (tuple(series.band_names), gdal.GDT_Float32, trajectory.NODATA),
            "break_year": (("break_year",), gdal.GDT_UInt16, trajectory.BREAK_NODATA),
            "break_size": (("break_size",), gdal.GDT_Float32, trajectory.NODATA),
            "anomaly": (tuple(str(label) for label in series.labels), gdal.GDT_Float32, trajectory.NODATA),
        }
        analyses = {
            "distance": "cosine distance (1 - cos) between consecutive years",
            "break_year": "year of the largest consecutive cosine distance (the later year of the pair); 0 = nodata",
            "break_size": "largest consecutive cosine distance",
            "anomaly": "cosine distance of each year to the pixel's mean direction (normalised mean of its unit vectors)",
        }
        specs, keys = [], []
        for name, key, _ in RASTER_OUTPUTS:
            if name in paths:
                names, data_type, nodata = bands[key]
                specs.append(OutputSpec(paths[name], names, data_type, nodata, dict(meta, GEOEMBED_ANALYSIS=analyses[key])))
                keys.append(key)
        feedback.setProgressText(self.tr("Writing"))

        def progress(fraction):
            log.progress(0.6 + 0.4 * fraction)

        if job is None:
            write_rasters(series.grid, specs, lambda window: pick(series.produce(window), keys), progress, log.is_cancelled)
        else:
            job.write(specs, keys, progress)
        if "OUTPUT_BREAK_YEAR" in paths:
            add_break_year_style(paths["OUTPUT_BREAK_YEAR"], series.labels[1:])

    def _write_table(self, parameters, context, series):
        fields = QgsFields()
        for name, kind in (
            ("pair", FIELD_STRING),
            ("from_year", FIELD_INT),
            ("to_year", FIELD_INT),
            ("valid_pixels", FIELD_LONGLONG),
            ("changed_pixels", FIELD_LONGLONG),
            ("valid_ha", FIELD_DOUBLE),
            ("changed_ha", FIELD_DOUBLE),
            ("changed_fraction", FIELD_DOUBLE),
            ("threshold", FIELD_DOUBLE),
        ):
            fields.append(QgsField(name, kind))
        sink, destination = self.parameterAsSink(
            parameters, "OUTPUT_TABLE", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
        )
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_TABLE"))
        for row in series.pair_summaries():
            feature = QgsFeature(fields)
            feature.setAttributes(
                [
                    row["pair"],
                    int(row["from"]),
                    int(row["to"]),
                    row["valid_pixels"],
                    row["changed_pixels"],
                    row["valid_m2"] / 1e4,
                    row["changed_m2"] / 1e4,
                    row["changed_fraction"],
                    float(series.threshold),
                ]
            )
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        del sink  # flushed and closed before the results are handed over
        return destination

    def _results(self, context, series, labels, paths, table, ramp_top, log):
        threshold = series.threshold
        for row in series.pair_summaries():
            log.info(
                f"{row['pair']}: {row['changed_pixels']} of {row['valid_pixels']} valid pixels changed (distance > "
                f"{threshold:.4f}), {change.area_text(row['changed_m2'])}, "
                f"{100 * row['changed_fraction']:.2f} % of the valid area."
            )
        summary = series.summary()
        log.info(
            f"Changed between at least one pair of years: {summary['changed_pixels']} of {summary['valid_pixels']} valid "
            f"pixels, {change.area_text(summary['changed_m2'])}, {100 * summary['changed_fraction']:.2f} % of the valid area."
        )
        outputs = {
            "YEARS": ",".join(str(label) for label in labels),
            "USED_THRESHOLD": threshold,
            "CHANGED_PIXELS": summary["changed_pixels"],
            "VALID_PIXELS": summary["valid_pixels"],
            "CHANGED_AREA": summary["changed_m2"] / 1e4,
            "CHANGED_FRACTION": summary["changed_fraction"],
        }
        for name, path in paths.items():
            outputs[name] = path
            if not context.willLoadLayerOnCompletion(path):
                continue
            details = context.layerToLoadOnCompletionDetails(path)
            details.name = LAYER_NAMES[name]
            if name == "OUTPUT_BREAK_YEAR":
                details.setPostProcessor(PaletteStyler.create(year_entries(labels[1:])))
            else:
                details.setPostProcessor(RampStyler.create(0.0, ramp_top))
        if table is not None:
            outputs["OUTPUT_TABLE"] = table
        return outputs


def pick(blocks, keys):
    """The blocks of the outputs asked for, in the order of their specs (produce() runs once per window)."""
    return [blocks[key] for key in keys]


def geoembed_rasters_in(folder):
    """Sorted embedding GeoTIFFs written by GeoEmbed (GEOEMBED_PRODUCT set, not an analysis output) directly in a
    folder, e.g. geoembed:load's YEARS files; [] when there are none (then the folder is a product's own folder)."""
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not name.lower().endswith(GEOTIFF_EXTENSIONS) or not os.path.isfile(path):
            continue
        try:
            dataset = open_raster(path)
        except GeoEmbedError:
            continue
        meta = dataset.GetMetadata() or {}
        if meta.get("GEOEMBED_PRODUCT") and not meta.get("GEOEMBED_ANALYSIS"):  # embeddings, not an analysis's output
            found.append(path)
        dataset = None
    return found


def remove_outputs(paths):
    for path in paths:
        for leftover in (path, os.path.splitext(path)[0] + ".qml", path + ".aux.xml"):
            if os.path.exists(leftover):
                os.remove(leftover)


# --- the break year: one colour per year, in year order --------------------------------------------


def year_entries(labels):
    """[(year, name, QColor)] along the blue - magenta - yellow ramp (early years dark, late years bright)."""
    ramp = blue_magenta_yellow_ramp()
    count = max(1, len(labels) - 1)
    return [(int(label), str(label), ramp.color(index / count)) for index, label in enumerate(labels)]


def add_break_year_style(path, labels):
    """Colour table in the GeoTIFF (for any software) and a default QGIS style listing just the years."""
    entries = year_entries(labels)
    dataset = gdal.Open(path, gdal.GA_Update)
    band = dataset.GetRasterBand(1)
    table = gdal.ColorTable()
    for value in range(int(max(labels)) + 1):
        table.SetColorEntry(value, (0, 0, 0, 0))
    for value, _, colour in entries:
        table.SetColorEntry(value, (colour.red(), colour.green(), colour.blue(), 255))
    band.SetRasterColorTable(table)
    band = None
    dataset = None
    layer = QgsRasterLayer(path, "break year", "gdal")
    apply_palette(layer, entries)
    save_default_style(layer)
