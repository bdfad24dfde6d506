"""geoembed:change - cosine distance between two embedding rasters, a change mask and the changed area."""

from osgeo import gdal
from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QColor

from ..analysis import change
from ..analysis.resample import nearest
from ..loaders.raster.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from ..qgis_compat import NUMBER_DOUBLE, save_default_style
from .base import FeedbackLog, GeoEmbedAlgorithm
from .inputs import open_input
from .styles import apply_ramp

MASK_CLASSES = ((0, "unchanged", QColor(215, 215, 215)), (1, "changed", QColor(215, 25, 28)))


class ChangeAlgorithm(GeoEmbedAlgorithm):
    NAME = "change"
    DISPLAY_NAME = "Change between two embedding rasters"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT", "INPUT_2")

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

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        threshold = self._threshold(parameters, context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        mask = self.parameterAsOutputLayer(parameters, "OUTPUT_MASK", context) if parameters.get("OUTPUT_MASK") else ""
        for path in filter(None, (output, mask)):
            check_destination(path)  # before any reading
        first = open_input(self, parameters, context, log)
        second = distances = None
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
            if not change.same_grid(first.grid, second.grid):
                grid = first.grid
                log.info(
                    f"INPUT_2 is on another grid: put on INPUT's grid ({grid.width} x {grid.height} pixels of {grid.res_x:g} "
                    f"in {grid.crs}) with nearest neighbour."
                )
                second = nearest(second, first.grid)
            distances = change.ChangeDistances(first, second, change.scratch_path_for(output))
            feedback.setProgressText(self.tr("Cosine distances"))
            distances.compute(lambda f: log.progress(0.6 * f), log.is_cancelled)
            if distances.valid_pixels == 0:
                raise QgsProcessingException("INPUT and INPUT_2 share no valid pixel; check that they cover the same area.")
            if threshold is None:
                threshold, separability = distances.automatic_threshold()
                log.info(f"Automatic threshold (Otsu on {distances.valid_pixels} distances): {threshold:.4f}.")
                if separability < 0.5:
                    log.warning(
                        f"The distances do not fall into two clear groups (Otsu separability {separability:.2f}); "
                        "the automatic threshold may mark ordinary differences as change: set THRESHOLD yourself."
                    )
            distances.threshold = threshold
            self._write(parameters, context, first, distances, output, mask, log, feedback)
            summary = distances.summary()
            ramp_top = max(distances.percentile(99.0), 2 * threshold, 1e-3)
        finally:
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
            details.setPostProcessor(DistanceStyler.create(0.0, ramp_top))
        if mask:
            outputs["OUTPUT_MASK"] = mask
            if context.willLoadLayerOnCompletion(mask):
                context.layerToLoadOnCompletionDetails(mask).name = "Change mask"
        return outputs

    def _threshold(self, parameters, context):
        """The fixed threshold, or None for automatic."""
        if parameters.get("THRESHOLD") in (None, ""):
            return None
        value = self.parameterAsDouble(parameters, "THRESHOLD", context)
        if value < 0:
            return None
        if value >= change.MAX_DISTANCE:
            raise QgsProcessingException(f"THRESHOLD must be below 2 (the largest cosine distance), got {value:g}.")
        return value

    def _write(self, parameters, context, first, distances, output, mask, log, feedback):
        meta = provenance_metadata(first.provenance)
        meta["GEOEMBED_ANALYSIS"] = "cosine distance (1 - cos) between INPUT and INPUT_2"
        meta["GEOEMBED_CHANGE_THRESHOLD"] = f"{distances.threshold:.6g}"
        specs = [OutputSpec(output, ("cosine_distance",), metadata=meta)]
        if mask:
            mask_meta = dict(meta, GEOEMBED_MASK="1 = changed (distance > threshold), 0 = unchanged, 255 = nodata")
            specs.append(OutputSpec(mask, ("change",), gdal.GDT_Byte, change.MASK_NODATA, mask_meta))
        feedback.setProgressText(self.tr("Writing"))
        write_rasters(
            first.grid,
            specs,
            lambda w: distances.produce(w)[: len(specs)],
            lambda f: log.progress(0.6 + 0.4 * f),
            log.is_cancelled,
        )
        if mask:
            add_mask_style(mask)


def add_mask_style(path):
    """Colour table and category names in the GeoTIFF, and a default QGIS style with the two classes."""
    dataset = gdal.Open(path, gdal.GA_Update)
    band = dataset.GetRasterBand(1)
    table = gdal.ColorTable()
    for value, _, colour in MASK_CLASSES:
        table.SetColorEntry(value, (colour.red(), colour.green(), colour.blue(), colour.alpha()))
    band.SetRasterColorTable(table)
    band.SetRasterCategoryNames([name for _, name, _ in MASK_CLASSES])
    dataset = None
    layer = QgsRasterLayer(path, "change mask", "gdal")
    classes = [QgsPalettedRasterRenderer.Class(value, colour, name) for value, name, colour in MASK_CLASSES]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    save_default_style(layer)


class DistanceStyler(QgsProcessingLayerPostProcessorInterface):
    """The distance map drawn with a colour ramp from 0 (no change) to a high percentile of the distances."""

    _instances = []  # Processing keeps a raw pointer: keep the Python objects alive

    def __init__(self, low, high):
        super().__init__()
        self.low, self.high = low, high

    @classmethod
    def create(cls, low, high):
        styler = cls(low, high)
        cls._instances.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            apply_ramp(layer, self.low, self.high)
