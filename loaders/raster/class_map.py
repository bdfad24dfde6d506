"""Class maps (one integer band, e.g. from geoembed:classify or geoembed:cluster) as EmbeddingRasters, with the class
names and colours they carry."""

from osgeo import gdal

from ..errors import GeoEmbedError
from ..remote.locations import basename
from .embedding_tiff import EmbeddingTiff

INTEGER_TYPES = (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32)
MAX_CLASS_VALUE = 65535  # class maps GeoEmbed writes are Byte or UInt16


class ClassMap(EmbeddingTiff):
    """A one-band integer raster: `names` {value: class name} and `colours` {value: (r, g, b)} from its category
    names, GEOEMBED_CLASSES metadata (values 1..n) and colour table, where it has them."""

    def __init__(self, location, what="INPUT"):
        super().__init__(location)
        name = basename(location)
        if self._dataset.RasterCount != 1:
            raise GeoEmbedError(
                f"{what} {name} has {self._dataset.RasterCount} bands; give a class map (one band), e.g. from geoembed:classify."
            )
        band = self._dataset.GetRasterBand(1)
        if band.DataType not in INTEGER_TYPES:
            raise GeoEmbedError(
                f"{what} {name} has {gdal.GetDataTypeName(band.DataType)} values; give a class map of whole numbers, "
                "e.g. from geoembed:classify."
            )
        self.what = what
        self.names = _names(band, self._dataset.GetMetadataItem("GEOEMBED_CLASSES"), self.nodata)
        self.colours = _colours(band, self.names)


def _names(band, geoembed_classes, nodata):
    """{value: name}: the band's category names (the nodata entry left out), else GEOEMBED_CLASSES as 1..n."""
    names = {}
    for value, name in enumerate(band.GetRasterCategoryNames() or []):
        if name and (nodata is None or value != nodata):
            names[value] = name
    if not names and geoembed_classes:
        names = {value: name for value, name in enumerate(geoembed_classes.split("|"), start=1)}
    return names


def _colours(band, names):
    table = band.GetRasterColorTable()
    if table is None:
        return {}
    return {value: tuple(table.GetColorEntry(value)[:3]) for value in names if value < table.GetCount()}
