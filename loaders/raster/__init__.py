"""Raster I/O: GDAL access, grids and affine maths, block prefetching, mosaics, output planning and writing."""
