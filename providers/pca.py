"""geoembed:pca - three principal components as an RGB byte raster, with a projection that can be saved and reused."""

import os

from osgeo import gdal
from qgis.core import (
    QgsMultiBandColorRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)

from ..analysis import pca
from ..analysis.distributed import pca_job
from ..loaders.raster.writer import OutputSpec, check_destination, provenance_metadata, write_rasters
from ..qgis_compat import NUMBER_INTEGER, PARAMETER_ADVANCED, save_default_style
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm
from .dask_cluster import add_cluster_parameters, cluster_settings
from .inputs import input_path, open_input

SAMPLE_SHARE = 0.4  # of the progress bar: the sampling pass (a full read), the rest is the writing pass


class PcaAlgorithm(GeoEmbedAlgorithm):
    NAME = "pca"
    DISPLAY_NAME = "PCA false colour"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)
    HELP_PARTS = ("cluster",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL_IN", self.tr("Reuse the projection saved by an earlier run (.json)"), extension="json", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "SAMPLE_SIZE",
                self.tr("Pixels sampled to fit the projection"),
                NUMBER_INTEGER,
                50_000,
                minValue=10,
            )
        )
        seed = QgsProcessingParameterNumber("SEED", self.tr("Random seed of the sample"), NUMBER_INTEGER, 0)
        seed.setFlags(seed.flags() | PARAMETER_ADVANCED)
        self.addParameter(seed)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("PCA colours")))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_MODEL",
                self.tr("Save the projection (.json)"),
                fileFilter="GeoEmbed PCA model (*.json)",
                optional=True,
                createByDefault=False,
            )
        )
        add_cluster_parameters(self)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)
        model_in = self.parameterAsFile(parameters, "MODEL_IN", context) if parameters.get("MODEL_IN") else ""
        model = pca.load_model(model_in) if model_in else None  # a bad model file is said before any reading
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        check_destination(output)  # before the sampling pass, which reads the whole raster
        raster = open_input(self, parameters, context, log)
        try:
            start = 0.0
            if model is not None:
                model.check_bands(raster.band_names)
                self._reuse_note(model, model_in, raster, log)
            else:
                start = SAMPLE_SHARE
                size = self.parameterAsInt(parameters, "SAMPLE_SIZE", context)
                seed = self.parameterAsInt(parameters, "SEED", context)
                feedback.setProgressText(self.tr("Sampling valid pixels"))
                model, valid = pca.fit_raster(raster, size, seed, lambda f: log.progress(start * f), log.is_cancelled)
                shares = ", ".join(f"{100 * s:.1f} %" for s in model.explained())
                log.info(
                    f"PCA fitted on {model.sample_size} of {valid} valid pixels; the components explain {shares} "
                    f"of the variance; stretch: {model.percentiles[0]:g}-{model.percentiles[1]:g} % percentiles."
                )
            meta = provenance_metadata(raster.provenance)
            meta["GEOEMBED_ANALYSIS"] = (
                f"PCA false colour: {len(model.axes)} principal component(s) of {len(model.band_names)} bands, "
                f"{model.percentiles[0]:g}-{model.percentiles[1]:g} % stretch onto 1..255, 0 = nodata"
            )
            meta["GEOEMBED_PCA_MODEL"] = model_in or "fitted on this raster"
            spec = OutputSpec(output, ("PC1", "PC2", "PC3"), gdal.GDT_Byte, 0, meta)
            feedback.setProgressText(self.tr("Writing the RGB composite"))

            def progress(fraction):
                log.progress(start + (1 - start) * fraction)

            if cluster is None:
                write_rasters(raster.grid, [spec], lambda w: [model.produce(raster.read(w))], progress, log.is_cancelled)
            else:  # fitted here; the workers open INPUT themselves and only project their pieces' blocks
                source = input_path(self, parameters, "INPUT", context)
                outside = settings.allow_paths_outside_mirror()
                pca_job.pca(cluster, source, outside, raster.grid, model, spec, log, progress)
        finally:
            raster.close()
        outputs = {"OUTPUT": output}
        try:
            style_rgb(output)
            model_path = self.parameterAsFileOutput(parameters, "OUTPUT_MODEL", context) if parameters.get("OUTPUT_MODEL") else ""
            if model_path:
                outputs["OUTPUT_MODEL"] = model.save(model_path)
        except BaseException:  # all or nothing: no raster without the model that was asked for
            for path in (output, os.path.splitext(output)[0] + ".qml", output + ".aux.xml"):
                if os.path.exists(path):
                    os.remove(path)
            raise
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = "PCA colours"
            details.setPostProcessor(RgbStyler.create())
        return outputs

    def _reuse_note(self, model, path, raster, log):
        product = getattr(raster.provenance, "product", "unknown")
        log.info(f"Reusing the projection of {path} (fitted on {model.sample_size} pixels of {model.product}): no refit.")
        if model.product != product:
            log.warning(f"MODEL_IN was fitted on product {model.product} and INPUT is {product}; the bands have the same names.")


def style_rgb(path):
    """Bands marked red/green/blue in the GeoTIFF, and a default QGIS style beside it: bands 1, 2, 3 drawn as they
    are (the bytes are already stretched, so no contrast enhancement), 0 transparent."""
    dataset = gdal.Open(path, gdal.GA_Update)
    for index, colour in enumerate((gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand), start=1):
        dataset.GetRasterBand(index).SetColorInterpretation(colour)
    dataset = None
    layer = QgsRasterLayer(path, "pca", "gdal")
    apply_rgb(layer)
    save_default_style(layer)


def apply_rgb(layer):
    """Bands 1, 2, 3 as red, green, blue, without contrast enhancement (0 is nodata in each band)."""
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3))
    layer.triggerRepaint()


class RgbStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies apply_rgb() when Processing adds the output to the project (its loader ignores the default style)."""

    _instances = []  # Processing keeps a raw pointer: keep the Python objects alive

    @classmethod
    def create(cls):
        styler = cls()
        cls._instances.append(styler)
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer) and layer.bandCount() == 3:
            apply_rgb(layer)
