"""Which pixels of a grid a polygon covers, burnt with GDAL one pixel window at a time.

Each polygon is burnt on its own (overlapping polygons each keep all their pixels) and only into the windows asked
for, so a polygon as large as a whole tile never needs a mask of the whole tile.
"""

import math

from osgeo import gdal, ogr

from ..errors import GeoEmbedError
from .gdal_io import gdal_call
from .grid import Window

# GDAL 3.11 merged the "Memory" vector driver into "MEM" (the old name still works, with a deprecation warning).
_MEM_VECTOR = int(gdal.VersionInfo()) >= 3110000


class PolygonMask:
    """A polygon or multi-polygon (WKB, in the grid's CRS) and the pixels of a grid it covers.

    all_touched=False: a pixel is covered when its centre lies inside (GDAL's rule); True: every pixel the
    polygon touches is covered.
    """

    def __init__(self, wkb, all_touched=False):
        geometry, _ = gdal_call(ogr.CreateGeometryFromWkb, bytes(wkb))
        if geometry is None:
            raise GeoEmbedError("A polygon's geometry cannot be read; check the layer (e.g. with Fix geometries).")
        geometry.FlattenTo2D()  # a Z would be added to the burnt value
        self.geometry = geometry
        self.all_touched = all_touched

    def window(self, grid):
        """The smallest window of grid holding every pixel the polygon may cover; None when it misses the grid."""
        xmin, xmax, ymin, ymax = self.geometry.GetEnvelope()
        if self.geometry.IsEmpty() or not all(math.isfinite(v) for v in (xmin, xmax, ymin, ymax)):
            return None
        pad = 1 if self.all_touched else 0  # a polygon edge on a pixel edge touches the pixel beyond it
        c0 = max(0, math.floor((xmin - grid.x0) / grid.res_x) - pad)
        c1 = min(grid.width, math.ceil((xmax - grid.x0) / grid.res_x) + pad)
        r0 = max(0, math.floor((grid.y0 - ymax) / grid.res_y) - pad)
        r1 = min(grid.height, math.ceil((grid.y0 - ymin) / grid.res_y) + pad)
        if c0 >= c1 or r0 >= r1:
            return None
        return Window(c0, r0, c1 - c0, r1 - r0)

    def blocks(self, grid, size):
        """Windows of at most size x size pixels covering window(grid), leaving out those the polygon does not meet
        (a multi-polygon's parts may lie far apart)."""
        window = self.window(grid)
        if window is None:
            return []
        pieces = [
            Window(col, row, min(size, window.col + window.width - col), min(size, window.row + window.height - row))
            for row in range(window.row, window.row + window.height, size)
            for col in range(window.col, window.col + window.width, size)
        ]
        if len(pieces) == 1:
            return pieces
        return [piece for piece in pieces if self._meets(grid.window_grid(piece).bounds)]

    def _meets(self, bounds):
        meets, _ = gdal_call(self.geometry.Intersects, _box(bounds))
        return meets is None or bool(meets)  # when GEOS cannot tell (an invalid polygon), burn the window to find out

    def mask(self, grid, window):
        """(window.height, window.width) bool array: the window's pixels the polygon covers."""
        target = gdal.GetDriverByName("MEM").Create("", window.width, window.height, 1, gdal.GDT_Byte)
        target.SetGeoTransform(grid.window_grid(window).geotransform)
        options = ["ALL_TOUCHED=TRUE"] if self.all_touched else []
        source = _memory_source(self.geometry)  # made per window: thousands of zones hold no GDAL datasets
        status, messages = gdal_call(gdal.RasterizeLayer, target, [1], source.GetLayer(0), burn_values=[1], options=options)
        if status != 0:
            reason = messages[-1] if messages else "GDAL failed"
            raise GeoEmbedError(f"Cannot rasterise a polygon ({reason}); check the layer (e.g. with Fix geometries).")
        return target.GetRasterBand(1).ReadAsArray().astype(bool)


def _memory_source(geometry):
    """A vector dataset in memory with one layer holding one feature with the geometry."""
    if _MEM_VECTOR:
        dataset = gdal.GetDriverByName("MEM").Create("", 0, 0, 0, gdal.GDT_Unknown)
    else:
        dataset = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = dataset.CreateLayer("zone", geom_type=ogr.wkbUnknown)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(geometry)
    layer.CreateFeature(feature)
    return dataset


def _box(bounds):
    xmin, ymin, xmax, ymax = bounds
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)):
        ring.AddPoint_2D(x, y)
    box = ogr.Geometry(ogr.wkbPolygon)
    box.AddGeometry(ring)
    return box
