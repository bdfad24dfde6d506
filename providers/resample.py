"""geoembed:resample - embedding-aware resampling: nearest copies vectors, aggregate sums and re-normalises."""

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..analysis import resample
from ..analysis.distributed import resample_job
from ..loaders.raster.grid import Grid, grid_from_bounds, transform_bounds
from ..loaders.raster.writer import write_geotiff
from ..qgis_compat import NUMBER_DOUBLE
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm, crs_to_string
from .dask_cluster import add_cluster_parameters, cluster_settings
from .inputs import input_path, open_input

MODES = ["auto", "nearest", "aggregate"]


class ResampleAlgorithm(GeoEmbedAlgorithm):
    NAME = "resample"
    DISPLAY_NAME = "Resample embeddings"
    GROUP = "Analyse"
    GROUP_ID = "analyse"
    PATH_INPUTS = ("INPUT",)
    HELP_PARTS = ("cluster",)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Embeddings (layer, product file or folder)")))
        self.addParameter(
            QgsProcessingParameterEnum("MODE", self.tr("Mode"), options=MODES, defaultValue="auto", usesStaticStrings=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber("RESOLUTION", self.tr("Pixel size (target CRS units)"), NUMBER_DOUBLE, optional=True)
        )
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", self.tr("Match the grid of"), optional=True))
        self.addParameter(QgsProcessingParameterCrs("CRS", self.tr("Target CRS (with RESOLUTION)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Resampled embeddings")))
        add_cluster_parameters(self)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)
        raster = open_input(self, parameters, context, log)
        result = None
        try:
            grid = self._target(parameters, context, raster)
            mode = self.parameterAsEnumString(parameters, "MODE", context) or "auto"
            if mode == "auto":
                mode = "aggregate" if resample.coarser(raster, grid) else "nearest"
                log.info(f"MODE=auto: {mode} (the target is {'coarser' if mode == 'aggregate' else 'not coarser'}).")
            output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
            how = mode if mode == "nearest" else "aggregate: sum of vectors, L2-normalised"
            summary = f"Resampling to {grid.width} x {grid.height} pixels of {grid.res_x:g} in {grid.crs} ({mode})."
            if cluster is None:
                result = resample.AggregateRaster(raster, grid) if mode == "aggregate" else resample.nearest(raster, grid)
                result.provenance.resampling = how
                log.info(summary)
                write_geotiff(result, output, log.progress, log.is_cancelled)
            else:  # workers open INPUT themselves, each computing pieces of the target grid
                raster.provenance.resampling = how
                log.info(summary)
                source = input_path(self, parameters, "INPUT", context)
                outside = settings.allow_paths_outside_mirror()
                resample_job.resample(cluster, source, outside, raster, grid, mode, output, log)
        finally:
            # Closing the derived raster waits for its background read, then closes the input.
            (result or raster).close()
        return {"OUTPUT": output}

    def _target(self, parameters, context, raster):
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context) if parameters.get("REFERENCE") else None
        has_resolution = parameters.get("RESOLUTION") not in (None, "")
        if reference is None and not has_resolution:
            raise QgsProcessingException("Give RESOLUTION or REFERENCE: the target grid is needed.")
        if reference is not None:
            extent = reference.extent()
            return Grid(
                crs_to_string(reference.crs()),
                extent.xMinimum(),
                extent.yMaximum(),
                reference.rasterUnitsPerPixelX(),
                reference.rasterUnitsPerPixelY(),
                reference.width(),
                reference.height(),
            )
        resolution = self.parameterAsDouble(parameters, "RESOLUTION", context)
        if resolution <= 0:
            raise QgsProcessingException(f"RESOLUTION must be greater than 0, got {resolution:g}.")
        crs = self.parameterAsCrs(parameters, "CRS", context)
        target_crs = crs_to_string(crs) if parameters.get("CRS") and crs.isValid() else raster.grid.crs
        bounds = transform_bounds(raster.grid.crs, target_crs, raster.grid.bounds)
        anchor = (raster.grid.x0, raster.grid.y0) if target_crs == raster.grid.crs else (0.0, 0.0)
        return grid_from_bounds(target_crs, bounds, resolution, anchor=anchor)
