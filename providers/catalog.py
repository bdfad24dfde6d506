"""geoembed:catalog - every supported product in one table and an HTML page, with costs for an extent."""

import html

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRectangle,
    QgsUnitTypes,
)

from ..loaders import catalog
from ..loaders.products import tessera_coverage, tessera_versions
from ..loaders.remote.locations import atomic_file
from ..qgis_compat import (
    DISTANCE_METERS,
    FIELD_DOUBLE,
    FIELD_INT,
    FIELD_STRING,
    NUMBER_INTEGER,
    PARAMETER_ADVANCED,
    SOURCE_VECTOR_POLYGON,
    WKB_MULTIPOLYGON,
    WKB_NO_GEOMETRY,
)
from . import settings
from .base import FeedbackLog, GeoEmbedAlgorithm


def products():
    """The catalog's product records, for the GeoEmbed panel (ui/ reads the data layer only through providers/)."""
    return list(catalog.PRODUCTS.values())


COLUMNS = (
    ("id", FIELD_STRING),
    ("name", FIELD_STRING),
    ("kind", FIELD_STRING),
    ("resolution_m", FIELD_DOUBLE),
    ("dims", FIELD_INT),
    ("dtype", FIELD_STRING),
    ("bytes_per_vector", FIELD_INT),
    ("licence", FIELD_STRING),
    ("years", FIELD_STRING),
    ("public_location", FIELD_STRING),
    ("dequantization", FIELD_STRING),
    ("area_km2", FIELD_DOUBLE),
    ("vectors", FIELD_DOUBLE),
    ("storage_gb", FIELD_DOUBLE),
    ("storage_usd_month", FIELD_DOUBLE),
    ("egress_usd", FIELD_DOUBLE),
)

COVERAGE_COLUMNS = (
    ("name", FIELD_STRING),
    ("year", FIELD_INT),
    ("version", FIELD_STRING),
    ("lon", FIELD_DOUBLE),
    ("lat", FIELD_DOUBLE),
    ("grid_bytes", FIELD_DOUBLE),  # double: a count of bytes may pass 2**31 in other products' tiles
    ("scales_bytes", FIELD_DOUBLE),
)


class CatalogAlgorithm(GeoEmbedAlgorithm):
    NAME = "catalog"
    DISPLAY_NAME = "Product catalog and costs"
    GROUP = "Load"
    GROUP_ID = "load"

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterExtent("EXTENT", self.tr("Area for storage and egress costs"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", self.tr("Catalog table"), optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT_HTML", self.tr("Catalog summary (HTML)"), fileFilter="HTML files (*.html)", optional=True
            )
        )
        source = QgsProcessingParameterString(
            "TESSERA_SOURCE",
            self.tr("Tessera coverage: mirror folder or https root (empty: the public Source Cooperative root)"),
            optional=True,
        )
        self.addParameter(source)
        self.addParameter(
            QgsProcessingParameterNumber(
                "YEAR", self.tr("Tessera coverage: year (empty: all years)"), NUMBER_INTEGER, optional=True
            )
        )
        version = QgsProcessingParameterEnum(
            "VERSION",
            self.tr("Tessera coverage: version (empty: v1)"),
            options=list(tessera_versions.VERSIONS),
            optional=True,
            usesStaticStrings=True,
        )
        version.setFlags(version.flags() | PARAMETER_ADVANCED)
        self.addParameter(version)
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "OUTPUT_COVERAGE",
                self.tr("Tessera tiles that exist for the extent (footprints)"),
                SOURCE_VECTOR_POLYGON,
                optional=True,
                createByDefault=False,
            )
        )

    def execute(self, parameters, context, feedback):
        area_m2 = self._area(parameters, context)
        rows = [_row(product, area_m2) for product in catalog.PRODUCTS.values()]
        outputs = {}
        fields = QgsFields()
        for name, kind in COLUMNS:
            fields.append(QgsField(name, kind))
        if parameters.get("OUTPUT") not in (None, ""):
            sink, destination = self.parameterAsSink(
                parameters, "OUTPUT", context, fields, WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem()
            )
            if sink is None:
                raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
            for row in rows:
                feature = QgsFeature(fields)
                feature.setAttributes([row[name] for name, _ in COLUMNS])
                sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
            outputs["OUTPUT"] = destination
        html_path = self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context)
        if html_path:
            with atomic_file(html_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
                out.write(render_html(rows, area_m2))
            outputs["OUTPUT_HTML"] = html_path
        if _given(parameters, "OUTPUT_COVERAGE") or _given(parameters, "TESSERA_SOURCE"):
            outputs.update(self._coverage(parameters, context, feedback))
        feedback.pushInfo(catalog.PRICES_NOTE + ".")
        return outputs

    def _coverage(self, parameters, context, feedback):
        """Which Tessera tiles exist for EXTENT (a year, a version): a line in the log, and their footprints."""
        wgs84 = self._lonlat_extent(parameters, context)
        if wgs84 is None:
            raise QgsProcessingException("Tessera coverage needs an EXTENT; set EXTENT (e.g. the map canvas).")
        year = self.parameterAsInt(parameters, "YEAR", context) if _given(parameters, "YEAR") else None
        version = self.parameterAsEnumString(parameters, "VERSION", context) if _given(parameters, "VERSION") else None
        source = (self.parameterAsString(parameters, "TESSERA_SOURCE", context) or "").strip() or None
        if source is None:
            feedback.pushInfo(f"No TESSERA_SOURCE given: reading the Tessera manifest from {catalog.TESSERA.public_location}.")
        found, tiles = tessera_coverage.coverage(
            source, wgs84, year, version, FeedbackLog(feedback), cache_dir=settings.cache_dir()
        )
        feedback.pushInfo(tessera_coverage.summary(found, tiles, year))
        if not _given(parameters, "OUTPUT_COVERAGE"):
            return {}
        fields = QgsFields()
        for name, kind in COVERAGE_COLUMNS:
            fields.append(QgsField(name, kind))
        crs = QgsCoordinateReferenceSystem("EPSG:4326")
        sink, destination = self.parameterAsSink(parameters, "OUTPUT_COVERAGE", context, fields, WKB_MULTIPOLYGON, crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT_COVERAGE"))
        for tile in tiles:
            feature = QgsFeature(fields)
            geometry = QgsGeometry.fromRect(QgsRectangle(*tile.bounds))
            geometry.convertToMultiType()
            feature.setGeometry(geometry)
            feature.setAttributes(
                [tile.name, tile.year, tile.version, tile.lon, tile.lat, _number(tile.grid_bytes), _number(tile.scales_bytes)]
            )
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return {"OUTPUT_COVERAGE": destination}

    def _lonlat_extent(self, parameters, context):
        if parameters.get("EXTENT") in (None, ""):
            return None
        crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
        if not crs.isValid():
            raise QgsProcessingException("EXTENT needs a CRS, e.g. EXTENT='5.98,6.02,44.99,45.01 [EPSG:4326]'.")
        rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        lonlat = QgsCoordinateReferenceSystem("EPSG:4326")
        rect = QgsCoordinateTransform(crs, lonlat, context.transformContext()).transformBoundingBox(rect)
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())

    def _area(self, parameters, context):
        if parameters.get("EXTENT") in (None, ""):
            return None
        crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
        if not crs.isValid():
            raise QgsProcessingException("EXTENT needs a CRS, e.g. EXTENT='5.98,6.02,44.99,45.01 [EPSG:4326]'.")
        rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
        if not crs.isGeographic():  # a projected extent: its own planar area, in square metres
            metres = QgsUnitTypes.fromUnitToUnitFactor(crs.mapUnits(), DISTANCE_METERS)
            return rect.width() * rect.height() * metres * metres
        lonlat = QgsCoordinateReferenceSystem("EPSG:4326")
        rect = QgsCoordinateTransform(crs, lonlat, context.transformContext()).transformBoundingBox(rect)
        return catalog.lonlat_area_m2(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


def _given(parameters, name):
    value = parameters.get(name)
    return value is not None and value != ""


def _number(value):
    return None if value is None else float(value)


def _row(product, area_m2):
    row = {
        "id": product.id,
        "name": product.name,
        "kind": product.kind,
        "resolution_m": product.resolution_m,
        "dims": product.dims,
        "dtype": product.dtype,
        "bytes_per_vector": product.bytes_per_vector,
        "licence": product.licence,
        "years": catalog.years_text(product),
        "public_location": product.public_location,
        "dequantization": product.dequantization,
        "area_km2": None,
        "vectors": None,
        "storage_gb": None,
        "storage_usd_month": None,
        "egress_usd": None,
    }
    cost = catalog.cost_for_area(product, area_m2) if area_m2 is not None else None
    if cost is not None:  # the generic product has no cost of its own: its size is that of each file
        row.update(
            area_km2=area_m2 / 1e6,
            vectors=cost.vectors,
            storage_gb=cost.gigabytes,
            storage_usd_month=cost.storage_usd_month,
            egress_usd=cost.egress_usd,
        )
    return row


def render_html(rows, area_m2):
    head = ["Product", "id", "Kind", "Resolution", "Dims", "Stored as", "Licence", "Years", "Public location", "De-quantisation"]
    if area_m2 is not None:
        head += ["Vectors", "Storage (GB)", "Storage ($/month)", "Egress ($)"]
    lines = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>GeoEmbed product catalog</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 6px;"
        "vertical-align:top}th{background:#eee}td.n{text-align:right}</style></head><body>",
        "<h1>Earth embedding products</h1>",
    ]
    if area_m2 is not None:
        lines.append(
            f"<p>Costs for an area of {area_m2 / 1e6:,.1f} km&sup2;: vectors &times; bytes per vector; "
            f"{html.escape(catalog.PRICES_NOTE)}.</p>"
        )
    lines.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        product = catalog.PRODUCTS[row["id"]]
        location = row["public_location"]
        cells = [
            row["name"],
            row["id"],
            row["kind"],
            catalog.FROM_THE_FILE if catalog.is_from_the_file(product) else f"{row['resolution_m']:g} m",
            catalog.dims_text(product),
            f"{row['dtype']} ({row['bytes_per_vector']} B/vector)" if row["bytes_per_vector"] else row["dtype"],
            row["licence"],
            row["years"],
            f"<a href='{html.escape(location)}'>{html.escape(location)}</a>" if location else "your own files",
            row["dequantization"],
        ]
        escaped = [c if c.startswith("<a ") else html.escape(c) for c in cells]
        numbers = []
        if area_m2 is not None and row["vectors"] is None:
            numbers = ["", "", "", ""]
        elif area_m2 is not None:
            numbers = [
                f"{row['vectors']:,.0f}",
                f"{row['storage_gb']:,.3f}",
                f"{row['storage_usd_month']:,.4f}",
                f"{row['egress_usd']:,.4f}",
            ]
        lines.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in escaped) + "".join(f"<td class='n'>{n}</td>" for n in numbers) + "</tr>"
        )
    lines.append("</table></body></html>")
    return "\n".join(lines)
