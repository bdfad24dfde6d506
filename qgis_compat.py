"""QGIS enum values under the spelling the running QGIS has.

QGIS 3.30-3.38 moved many enums into `Qgis` (and field types from QVariant.Type to QMetaType.Type); QGIS 4 keeps only
the new spellings, which QGIS 3.22 does not have yet. Everything else names these values through this module, the
only place that knows the old spellings (tests/unit/test_qt6_spellings.py checks that). Enums that did not move
(Qgis.MessageLevel, Qgis.DataType, QgsFeatureSink.Flag, ...) are spelled directly, scoped: every version has those.
"""

from qgis.core import Qgis

QGIS_VERSION = Qgis.QGIS_VERSION_INT

if QGIS_VERSION >= 33000:
    GEOMETRY_POINT = Qgis.GeometryType.Point
    GEOMETRY_POLYGON = Qgis.GeometryType.Polygon
    WKB_POINT = Qgis.WkbType.Point
    WKB_MULTIPOLYGON = Qgis.WkbType.MultiPolygon
    WKB_NO_GEOMETRY = Qgis.WkbType.NoGeometry
    DISTANCE_METERS = Qgis.DistanceUnit.Meters
    IDENTIFY_VALUE = Qgis.RasterIdentifyFormat.Value
else:
    from qgis.core import QgsRaster, QgsUnitTypes, QgsWkbTypes

    GEOMETRY_POINT = QgsWkbTypes.GeometryType.PointGeometry
    GEOMETRY_POLYGON = QgsWkbTypes.GeometryType.PolygonGeometry
    WKB_POINT = QgsWkbTypes.Type.Point
    WKB_MULTIPOLYGON = QgsWkbTypes.Type.MultiPolygon
    WKB_NO_GEOMETRY = QgsWkbTypes.Type.NoGeometry
    DISTANCE_METERS = QgsUnitTypes.DistanceUnit.DistanceMeters
    IDENTIFY_VALUE = QgsRaster.IdentifyFormat.IdentifyFormatValue

if QGIS_VERSION >= 33400:
    LAYER_FILTER_RASTER = Qgis.LayerFilter.RasterLayer
    LAYER_FILTER_POINT = Qgis.LayerFilter.PointLayer
else:
    from qgis.core import QgsMapLayerProxyModel

    LAYER_FILTER_RASTER = QgsMapLayerProxyModel.Filter.RasterLayer
    LAYER_FILTER_POINT = QgsMapLayerProxyModel.Filter.PointLayer

if QGIS_VERSION >= 33600:
    NUMBER_INTEGER = Qgis.ProcessingNumberParameterType.Integer
    NUMBER_DOUBLE = Qgis.ProcessingNumberParameterType.Double
    SOURCE_VECTOR = Qgis.ProcessingSourceType.Vector  # any vector layer, tables without geometry too
    SOURCE_VECTOR_ANY_GEOMETRY = Qgis.ProcessingSourceType.VectorAnyGeometry
    SOURCE_VECTOR_POINT = Qgis.ProcessingSourceType.VectorPoint
    SOURCE_VECTOR_POLYGON = Qgis.ProcessingSourceType.VectorPolygon
    SOURCE_RASTER = Qgis.ProcessingSourceType.Raster
    PARAMETER_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    CRS_WKT_PREFERRED = Qgis.CrsWktVariant.Preferred
else:
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsProcessing,
        QgsProcessingParameterDefinition,
        QgsProcessingParameterNumber,
    )

    NUMBER_INTEGER = QgsProcessingParameterNumber.Type.Integer
    NUMBER_DOUBLE = QgsProcessingParameterNumber.Type.Double
    SOURCE_VECTOR = QgsProcessing.SourceType.TypeVector
    SOURCE_VECTOR_ANY_GEOMETRY = QgsProcessing.SourceType.TypeVectorAnyGeometry
    SOURCE_VECTOR_POINT = QgsProcessing.SourceType.TypeVectorPoint
    SOURCE_VECTOR_POLYGON = QgsProcessing.SourceType.TypeVectorPolygon
    SOURCE_RASTER = QgsProcessing.SourceType.TypeRaster
    PARAMETER_ADVANCED = QgsProcessingParameterDefinition.Flag.FlagAdvanced
    CRS_WKT_PREFERRED = QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED

# Field types for QgsField(name, type), also what QgsField.type() returns: QMetaType.Type since QGIS 3.38 (the
# QVariant.Type constructor is deprecated there, and QGIS 4's PyQt6 has no QVariant.Type at all).
if QGIS_VERSION >= 33800:
    from qgis.PyQt.QtCore import QMetaType

    FIELD_STRING = QMetaType.Type.QString
    FIELD_INT = QMetaType.Type.Int
    FIELD_LONGLONG = QMetaType.Type.LongLong
    FIELD_DOUBLE = QMetaType.Type.Double
else:
    from qgis.PyQt.QtCore import QVariant

    FIELD_STRING = QVariant.Type.String
    FIELD_INT = QVariant.Type.Int
    FIELD_LONGLONG = QVariant.Type.LongLong
    FIELD_DOUBLE = QVariant.Type.Double


def save_default_style(layer):
    """Save the layer's style as its default (.qml beside the file); QGIS 3.26 added the categories argument and
    deprecated the call without it."""
    if QGIS_VERSION >= 32600:
        from qgis.core import QgsMapLayer

        return layer.saveDefaultStyle(QgsMapLayer.StyleCategory.AllStyleCategories)
    return layer.saveDefaultStyle()
