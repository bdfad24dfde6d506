"""geoembed:change - cosine distance between two embedding rasters, a change mask and the changed area."""

from osgeo import gdal
from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import change
from ..analysis.distributed.change_job import ChangeJob
from ..analysis.resample import nearest
from ..loaders.raster.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from ..qgis_compat import NUMBER_DOUBLE
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm
from .dask_cluster import add_cluster_parameters, cluster_settings
from .inputs import input_path, open_input
from .styles import RampStyler, write_palette

MASK_CLASSES = ((0, "unchanged", (215, 215, 215)), (1, "changed", (215, 25, 28)))


class ChangeAlgorithm(GeoEmbedAlgorithm):
    NAME = "change"
    DISPLAY_NAME = "Change between two embedding rasters"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT", "INPUT_2")
    HELP_PARTS = ("cluster",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings, before (layer, product or folder)")))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_2", self.tr("Embeddings, after (same product)")))
        self.addParameter(
            QgsProcessingParameterNumber(
                "THRESHOLD",
                self.tr("Change threshold on the cosine distance (0..2; empty or negative: automatic, Otsu)"),
                NUMBER_DOUBLE,
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Cosine distance")))
        self.addParameter(
            QgsProcessingParameterRasterDestination("OUTPUT_MASK", self.tr("Change mask"), optional=True, createByDefault=False)
        )
        for name, description in (
            ("USED_THRESHOLD", "Threshold used"),
            ("CHANGED_PIXELS", "Changed pixels"),
            ("VALID_PIXELS", "Pixels valid in both rasters"),
            ("CHANGED_AREA", "Changed area (hectares)"),
            ("CHANGED_FRACTION", "Changed fraction of the valid area (0..1)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(description)))
        add_cluster_parameters(self)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)
        threshold = fixed_threshold(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context) if parameters.get("OUTPUT_MASK") else ""
        for path in filter(None, (output, mask)):
            check_destination(path)  # before any reading
        first = open_input(self, parameters, context, log)
        second = distances = job = None
        try:
            second = open_input(self, parameters, context, log, "INPUT_2")
            change.check_same_bands(first, second)
            if first.provenance.product != second.provenance.product:
                log.warning(
                    f"INPUT is {first.provenance.product} and INPUT_2 {second.provenance.product}: their bands have the same "
                    "names, but distances between different products mean little."
                )
            if not change.overlaps(first.grid, second.grid):
                raise QgsProcessingException("INPUT and INPUT_2 do not overlap; give two rasters of the same area.")
            grids = [first.grid, second.grid]  # as opened: what the cluster's workers must find
            if not change.same_grid(first.grid, second.grid):
                grid = first.grid
                log.info(
                    f"INPUT_2 is on another grid: put on INPUT's grid ({grid.width} x {grid.height} pixels of {grid.res_x:g} "
                    f"in {grid.crs}) with nearest neighbour."
                )
                second = nearest(second, first.grid)
            distances = change.ChangeDistances(first, second, change.scratch_path_for(output))
            if cluster is not None:  # the workers open INPUT and INPUT_2 themselves; distances gets their counts
                sources = [input_path(self, parameters, name, context) for name in ("INPUT", "INPUT_2")]
                outside = settings.allow_paths_outside_mirror()
                job = ChangeJob(cluster, distances, sources, grids, outside, output, log)
            feedback.setProgressText(self.tr("Cosine distances"))
            (job or distances).compute(lambda f: log.progress(0.6 * f), log.is_cancelled)
            if distances.valid_pixels == 0:
                raise QgsProcessingException("INPUT and INPUT_2 share no valid pixel; check that they cover the same area.")
            if threshold is None:
                threshold, separability = distances.automatic_threshold()
                log.info(f"Automatic threshold (Otsu on {distances.valid_pixels} distances): {threshold:.4f}.")
                warn_unless_separable(log, separability)
            distances.threshold = threshold
            self._write(parameters, context, first, distances, output, mask, log, feedback, job)
            summary = distances.summary()
            ramp_top = max(distances.percentile(99.0), 2 * threshold, 1e-3)
        finally:
            if job is not None:
                job.close()  # its pieces, and the local workers it started
            if distances is not None:
                distances.close()
            for raster in (first, second):
                if raster is not None:
                    raster.close()
        log.info(
            f"Changed (cosine distance > {threshold:.4f}): {summary['changed_pixels']} of {summary['valid_pixels']} "
            "valid pixels, "
            f"{change.area_text(summary['changed_m2'])}, {100 * summary['changed_fraction']:.2f} % of the valid area "
            f"({change.area_text(summary['valid_m2'])})."
        )
        outputs = {
            "OUTPUT": output,
            "USED_THRESHOLD": threshold,
            "CHANGED_PIXELS": summary["changed_pixels"],
            "VALID_PIXELS": summary["valid_pixels"],
            "CHANGED_AREA": summary["changed_m2"] / 1e4,
            "CHANGED_FRACTION": summary["changed_fraction"],
        }
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = "Change (cosine distance)"
            details.setPostProcessor(RampStyler.create(0.0, ramp_top))
        if mask:
            outputs["OUTPUT_MASK"] = mask
            if context.willLoadLayerOnCompletion(mask):
                context.layerToLoadOnCompletionDetails(mask).name = "Change mask"
        return outputs

    def _write(self, parameters, context, first, distances, output, mask, log, feedback, job=None):
        meta = provenance_metadata(first.provenance)
        meta["GEOEMBED_ANALYSIS"] = "cosine distance (1 - cos) between INPUT and INPUT_2"
        meta["GEOEMBED_CHANGE_THRESHOLD"] = f"{distances.threshold:.6g}"
        specs = [OutputSpec(output, ("cosine_distance",), metadata=meta)]
        if mask:
            mask_meta = dict(meta, GEOEMBED_MASK="1 = changed (distance > threshold), 0 = unchanged, 255 = nodata")
            specs.append(OutputSpec(mask, ("change",), gdal.GDT_Byte, change.MASK_NODATA, mask_meta))
        feedback.setProgressText(self.tr("Writing"))

        def progress(fraction):
            log.progress(0.6 + 0.4 * fraction)

        if job is None:
            write_rasters(first.grid, specs, lambda w: distances.produce(w)[: len(specs)], progress, log.is_cancelled)
        else:
            job.write(specs, progress)
        if mask:
            add_mask_style(mask)


def fixed_threshold(algorithm, parameters, context):
    """THRESHOLD on the cosine distance, or None for automatic (empty or negative)."""
    if parameters.get("THRESHOLD") in (None, ""):
        return None
    value = algorithm.parameterAsDouble(parameters, "THRESHOLD", context)
    if value < 0:
        return None
    if value >= change.MAX_DISTANCE:
        raise QgsProcessingException(f"THRESHOLD must be below 2 (the largest cosine distance), got {value:g}.")
    return value


def warn_unless_separable(log, separability):
    """Otsu's automatic threshold means little when the distances do not fall into two groups: say so."""
    if separability < 0.5:
        log.warning(
            f"The distances do not fall into two clear groups (Otsu separability {separability:.2f}); "
            "the automatic threshold may mark ordinary differences as change: set THRESHOLD yourself."
        )


def add_mask_style(path):
    """Colour table and category names in the GeoTIFF, and a default QGIS style with the two classes."""
    write_palette(path, MASK_CLASSES, "change mask")
