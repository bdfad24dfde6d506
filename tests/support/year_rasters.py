"""Embedding GeoTIFFs of four years over one small area, for geoembed:change and geoembed:trajectory on a cluster:
3 x 2 output blocks (512 pixels), a little noise every year, a box whose vectors turn in 2022 and another in 2023,
a nodata box in 2021, and 2024 on a grid shifted by half a pixel (so it is put on the others' grid by nearest
neighbour, pixel centres on source pixel edges included)."""

from pathlib import Path

import numpy as np
from osgeo import gdal, osr

WIDTH, HEIGHT, BANDS = 1100, 560, 8
YEARS = (2021, 2022, 2023, 2024)
TURNED = {2022: (60, 200, 100, 700), 2023: (300, 420, 500, 1050)}  # rows, cols whose vectors turn that year
HOLE_2021 = (0, 40, 0, 90)
NODATA = -9999.0
X0, Y0, RES = 500_000.0, 5_000_000.0, 10.0


def build_years(root):
    """{year: path} of Float32 GeoTIFFs (GEOEMBED_PRODUCT and GEOEMBED_YEAR set, bands A00..A07)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(15)
    values = rng.normal(size=(BANDS, HEIGHT, WIDTH))
    paths = {}
    for year in YEARS:
        values = values + 0.05 * rng.normal(size=values.shape)
        if year in TURNED:
            r0, r1, c0, c1 = TURNED[year]
            values[:, r0:r1, c0:c1] = np.roll(values[:, r0:r1, c0:c1], 3, axis=0)
        valid = np.ones((HEIGHT, WIDTH), dtype=bool)
        if year == 2021:
            r0, r1, c0, c1 = HOLE_2021
            valid[r0:r1, c0:c1] = False
        stored = np.where(valid, values, NODATA).astype(np.float32)
        shift = RES / 2 if year == 2024 else 0.0
        paths[year] = write_year(root / f"emb_{year}.tif", stored, (X0 + shift, RES, 0.0, Y0 - shift, 0.0, -RES), year)
    return paths


def write_year(path, values, geotransform, year):
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), WIDTH, HEIGHT, BANDS, gdal.GDT_Float32, ["TILED=YES"])
    dataset.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "aef", "GEOEMBED_YEAR": str(year)})
    for index in range(BANDS):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(f"A{index:02d}")
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index])
    dataset = None
    return str(path)
