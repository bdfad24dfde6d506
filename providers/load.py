"""geoembed:load - any embedding product to a north-up, de-quantised Float32 GeoTIFF."""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..analysis.distributed import load_job as distributed
from ..loaders import catalog, load
from ..loaders.catalog import has_unit_vectors
from ..loaders.errors import GeoEmbedError
from ..loaders.products import tessera_versions
from ..loaders.products.patches import patch_fields_json
from ..loaders.raster import overviews
from ..loaders.years import parse_years, run_years
from ..qgis_compat import FIELD_INT, FIELD_STRING, NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED, SOURCE_VECTOR_ANY_GEOMETRY
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm, crs_to_string
from .dask_cluster import add_cluster_parameters, cluster_settings
from .quicklook import render_quicklook
from .styles import EmbeddingStyler

PRODUCT_CHOICES = ["auto", *catalog.PRODUCTS]


class LoadAlgorithm(GeoEmbedAlgorithm):
    NAME = "load"
    DISPLAY_NAME = "Load embeddings"
    GROUP = "Load"
    GROUP_ID = "load"
    HELP_PARTS = ("cluster",)

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.addParameter(
            QgsProcessingParameterEnum(
                "PRODUCT", self.tr("Product"), options=PRODUCT_CHOICES, defaultValue="auto", usesStaticStrings=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                "SOURCE",
                self.tr("Source: product file or folder, index, any embedding raster, or http(s) URL (empty: AEF copy)"),
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterExtent("EXTENT", self.tr("Extent"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber("YEAR", self.tr("Year (empty: the latest available)"), NUMBER_INTEGER, optional=True)
        )
        self.addParameter(
            QgsProcessingParameterString(
                "YEARS",
                self.tr("Several years, one file each on one grid (e.g. 2019,2021,2024 or 2018-2024; empty: one year)"),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "VERSION",
                self.tr("Tessera version (empty: v1, or the only version SOURCE holds)"),
                options=list(tessera_versions.VERSIONS),
                optional=True,
                usesStaticStrings=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterCrs("CRS", self.tr("Output CRS (empty: UTM zone of the extent's centre)"), optional=True)
        )
        resolution = QgsProcessingParameterNumber(
            "RESOLUTION",
            self.tr("Pixel size in output CRS units (empty: native 10 m)"),
            NUMBER_DOUBLE,
            optional=True,
        )
        resolution.setFlags(resolution.flags() | PARAMETER_ADVANCED)
        self.addParameter(resolution)
        outside = QgsProcessingParameterBoolean(
            "ALLOW_PATHS_OUTSIDE_MIRROR",
            self.tr("Let the mirror's index point outside the mirror (other hosts, any local file)"),
            defaultValue=settings.allow_paths_outside_mirror(),
            optional=True,
        )
        outside.setFlags(outside.flags() | PARAMETER_ADVANCED)
        self.addParameter(outside)
        dimensions = QgsProcessingParameterNumber(
            "DIMENSIONS",
            self.tr("Tessera v2 fast preview: read only the first 4 or 16 dimensions (empty: all 128)"),
            NUMBER_INTEGER,
            optional=True,
        )
        dimensions.setFlags(dimensions.flags() | PARAMETER_ADVANCED)
        self.addParameter(dimensions)
        output_type = QgsProcessingParameterEnum(
            "OUTPUT_TYPE",
            self.tr("Stored as: float32, or int16 (AlphaEarth only: the same values, exact, in less time and space)"),
            options=list(load.OUTPUT_TYPES),
            defaultValue="float32",
            optional=True,
            usesStaticStrings=True,
        )
        output_type.setFlags(output_type.flags() | PARAMETER_ADVANCED)
        self.addParameter(output_type)
        build_overviews = QgsProcessingParameterBoolean(
            "OVERVIEWS",
            self.tr("Build embedding overviews (mean vectors; fast display and similarity previews of large layers)"),
            defaultValue=False,
            optional=True,
        )
        build_overviews.setFlags(build_overviews.flags() | PARAMETER_ADVANCED)
        self.addParameter(build_overviews)
        add_cluster_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Embeddings")))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "QUICKLOOK", self.tr("PCA quicklook (PNG)"), fileFilter="PNG images (*.png)", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_PATCHES",
                self.tr("Patches with their embeddings (patch products: Clay, Earth Index, Major TOM)"),
                SOURCE_VECTOR_ANY_GEOMETRY,
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputString("PRODUCT", self.tr("Product id loaded")))
        self.addOutput(QgsProcessingOutputNumber("YEAR", self.tr("Year loaded")))
        self.addOutput(QgsProcessingOutputString("CRS", self.tr("CRS of the output")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_YEARS", self.tr("Embeddings of every year (with YEARS)")))
        self.addOutput(QgsProcessingOutputString("YEARS_LOADED", self.tr("Years loaded (with YEARS), e.g. 2019,2024")))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        product = parameters.get("PRODUCT")
        if isinstance(product, str) and product not in PRODUCT_CHOICES:
            return False, f"Unknown product '{product}'; valid PRODUCT values are: {', '.join(PRODUCT_CHOICES)}."
        try:
            _years(parameters)
        except GeoEmbedError as exc:
            return False, str(exc)
        return super().checkParameterValues(parameters, context)

    def execute(self, parameters, context, feedback):
        log = FeedbackLog(feedback)
        cluster = cluster_settings(self, parameters, context)  # a missing dask is said before any work
        request = load.LoadRequest(
            output=self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            product=self.parameterAsEnumString(parameters, "PRODUCT", context) or "auto",
            source=(self.parameterAsString(parameters, "SOURCE", context) or "").strip() or None,
            year=self.parameterAsInt(parameters, "YEAR", context) if _given(parameters, "YEAR") else None,
            resolution=self.parameterAsDouble(parameters, "RESOLUTION", context) if _given(parameters, "RESOLUTION") else None,
            cache_dir=settings.cache_dir(),
            allow_paths_outside_mirror=self._allow_outside(parameters, context),
            version=self.parameterAsEnumString(parameters, "VERSION", context) if _given(parameters, "VERSION") else None,
            dimensions=self.parameterAsInt(parameters, "DIMENSIONS", context) if _given(parameters, "DIMENSIONS") else None,
            output_type=self.parameterAsEnumString(parameters, "OUTPUT_TYPE", context) or "float32",
            overviews=_given(parameters, "OVERVIEWS") and self.parameterAsBool(parameters, "OVERVIEWS", context),
        )
        if request.source is None and request.product in ("aef", "auto") and settings.aef_mirror():
            request.source = settings.aef_mirror()
            log.info(f"No SOURCE given: reading the AlphaEarth mirror set in the GeoEmbed settings, {request.source}.")
        if _given(parameters, "EXTENT"):
            extent_crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            if not extent_crs.isValid():
                raise QgsProcessingException("EXTENT needs a CRS, e.g. EXTENT='5.98,6.02,44.99,45.01 [EPSG:4326]'.")
            rect = self.parameterAsExtent(parameters, "EXTENT", context, extent_crs)
            request.extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            request.extent_crs = crs_to_string(extent_crs)
        crs = self.parameterAsCrs(parameters, "CRS", context)
        if _given(parameters, "CRS") and crs.isValid():
            request.crs = crs_to_string(crs)
        years = _years(parameters)
        if years:
            return self._execute_years(parameters, context, feedback, request, years, cluster)
        feedback.setProgressText(self.tr("Reading, mosaicking and writing blocks"))
        progress = _scaled(log.progress, 0.95)
        if cluster is None:
            result = load.run(request, log, progress=progress, is_cancelled=log.is_cancelled)
        else:  # workers plan the same request and write pieces; merged here into OUTPUT
            result = distributed.run(cluster, request, log, progress=progress, is_cancelled=log.is_cancelled)
        outputs = {"OUTPUT": result.output, "PRODUCT": result.product, "YEAR": result.provenance.year, "CRS": result.grid.crs}
        quicklook = self.parameterAsFileOutput(parameters, "QUICKLOOK", context) if _given(parameters, "QUICKLOOK") else ""
        if quicklook:
            feedback.setProgressText(self.tr("Rendering the PCA quicklook"))
            outputs["QUICKLOOK"] = render_quicklook(result.output, quicklook)
        if result.patches is not None and _given(parameters, "OUTPUT_PATCHES"):
            outputs["OUTPUT_PATCHES"] = self._write_patches(parameters, context, result)
        elif _given(parameters, "OUTPUT_PATCHES"):
            log.warning("OUTPUT_PATCHES is only written for patch products (Clay, Earth Index, Major TOM).")
        feedback.setProgress(100)
        if context.willLoadLayerOnCompletion(result.output):
            details = context.layerToLoadOnCompletionDetails(result.output)
            details.name = _layer_name(result)
            details.setPostProcessor(EmbeddingStyler.create(result.provenance.product))
        return outputs

    def _execute_years(self, parameters, context, feedback, request, years, cluster=None):
        """YEARS: one file per year on one grid; OUTPUT is the latest year's file, OUTPUT_YEARS all of them."""
        log = FeedbackLog(feedback)
        feedback.setProgressText(self.tr("Reading, mosaicking and writing blocks, year by year"))
        progress = _scaled(log.progress, 0.95)
        if cluster is None:
            results = run_years(request, years, log, progress=progress, is_cancelled=log.is_cancelled)
        else:
            results = distributed.run_years_on_cluster(cluster, request, years, log, progress, log.is_cancelled)
        if request.overviews:  # each year's file, read back (run_years writes them itself)
            feedback.setProgressText(self.tr("Building the embedding overviews"))
            for result in results:
                overviews.build(result.output, has_unit_vectors(result.product), is_cancelled=log.is_cancelled)
        latest = results[-1]
        outputs = {
            "OUTPUT": latest.output,
            "OUTPUT_YEARS": [result.output for result in results],
            "YEARS_LOADED": ",".join(str(result.provenance.year) for result in results),
            "PRODUCT": latest.product,
            "YEAR": latest.provenance.year,
            "CRS": latest.grid.crs,
        }
        quicklook = self.parameterAsFileOutput(parameters, "QUICKLOOK", context) if _given(parameters, "QUICKLOOK") else ""
        if quicklook:
            feedback.setProgressText(self.tr("Rendering the PCA quicklook of the latest year"))
            outputs["QUICKLOOK"] = render_quicklook(latest.output, quicklook)
        if _given(parameters, "OUTPUT_PATCHES"):
            log.warning("OUTPUT_PATCHES is not written with YEARS; load a patch product one year at a time.")
        feedback.setProgress(100)
        _load_years_on_completion(context, request.output, results)
        return outputs

    def _allow_outside(self, parameters, context):
        """ALLOW_PATHS_OUTSIDE_MIRROR when given, else the GeoEmbed setting (as SOURCE falls back to the mirror setting)."""
        if _given(parameters, "ALLOW_PATHS_OUTSIDE_MIRROR"):
            return self.parameterAsBool(parameters, "ALLOW_PATHS_OUTSIDE_MIRROR", context)
        return settings.allow_paths_outside_mirror()

    def _write_patches(self, parameters, context, result):
        destination = self.parameterAsOutputLayer(parameters, "OUTPUT_PATCHES", context)
        if destination.lower().endswith((".shp", ".dbf")):
            raise QgsProcessingException(
                "OUTPUT_PATCHES cannot be a shapefile: it cuts text at 254 characters, embeddings are longer; use .gpkg."
            )
        table = result.patches
        fields = QgsFields()
        for name, kind in (
            ("id", FIELD_STRING),
            ("date", FIELD_STRING),
            ("product", FIELD_STRING),
            ("dims", FIELD_INT),
            ("embedding", FIELD_STRING),
        ):
            fields.append(QgsField(name, kind))
        first = QgsGeometry()
        first.fromWkb(table.geometries[0])
        crs = QgsCoordinateReferenceSystem("EPSG:4326")
        sink, destination = self.parameterAsSink(parameters, "OUTPUT_PATCHES", context, fields, first.wkbType(), crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_PATCHES"))
        dims = table.embeddings.shape[1]
        for wkb, patch_id, date, vector in zip(table.geometries, table.ids, table.dates, table.embeddings):
            feature = QgsFeature(fields)
            geometry = QgsGeometry()
            geometry.fromWkb(wkb)
            feature.setGeometry(geometry)
            feature.setAttributes([patch_id, date, result.product, dims, patch_fields_json(vector)])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return destination


def _given(parameters, name):
    value = parameters.get(name)
    return value is not None and value != ""


def _years(parameters):
    """The years of YEARS (None without it); refuses junk and YEAR and YEARS together."""
    if not _given(parameters, "YEARS"):
        return None
    if _given(parameters, "YEAR"):
        raise GeoEmbedError("Give YEAR or YEARS, not both: YEAR loads one year, YEARS several (e.g. 2018-2024).")
    return parse_years(str(parameters["YEARS"]))


def _load_years_on_completion(context, destination, results):
    """Load every year's file (not OUTPUT's own path, which YEARS does not write), named and styled like one year's."""
    if not context.willLoadLayerOnCompletion(destination):
        return
    details = context.layerToLoadOnCompletionDetails(destination)
    layers = dict(context.layersToLoadOnCompletion())
    layers.pop(destination, None)
    for result in results:
        year_details = QgsProcessingContext.LayerDetails(_layer_name(result), details.project, details.outputName)
        year_details.layerTypeHint = details.layerTypeHint
        year_details.setPostProcessor(EmbeddingStyler.create(result.provenance.product))
        layers[result.output] = year_details
    context.setLayersToLoadOnCompletion(layers)


def _layer_name(result):
    year = f" {result.provenance.year}" if result.provenance.year else ""
    return f"{result.product.upper()}{year} embeddings"


def _scaled(progress, share):
    """progress(fraction) of a step that takes the first `share` of the bar."""
    return lambda fraction: progress(share * fraction)
