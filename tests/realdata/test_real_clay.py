"""A real Clay v0 file (5 chips of 5120 m) loaded with PRODUCT=auto: one pixel per chip, on the chips' own lattice.

The chips are read from the file with pyarrow and OGR, reprojected with pyproj; their UTM zone is the one in
which their polygons are axis-aligned 5120 m squares. Real Clay v0 lattices start at a Sentinel-2 tile corner,
not at multiples of 5120 m (PROVENANCE.md).
"""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from osgeo import ogr
from pyproj import CRS, Transformer

from tests.realdata.helpers import CLAY_FILE, all_values, pixel_centre, pixel_size, verified

CHIP = 5120.0
DIMENSIONS = 768
NORM = 2.83  # PROVENANCE.md: Clay v0 vectors are not unit length
SQUARE_TOLERANCE = 1.0  # metres, for "axis-aligned 5120 m square" after reprojection
CENTRE_TOLERANCE = 1.0  # metres between a chip's centre and the centre of the pixel holding its vector
VALUE_TOLERANCE = 1e-6


class Chips:
    """The file's rows: lon/lat polygon corners and embeddings, read without geoembed."""

    def __init__(self, path):
        table = pq.read_table(path)
        geo = json.loads(table.schema.metadata[b"geo"])
        column = geo["primary_column"]
        crs_json = geo["columns"][column].get("crs")
        self.crs = CRS.from_json_dict(crs_json) if crs_json else CRS.from_string("OGC:CRS84")
        self.corners = [_ring_corners(ogr.CreateGeometryFromWkb(wkb)) for wkb in table.column(column).to_pylist()]
        self.embeddings = np.array(table.column("embeddings").to_pylist(), dtype=np.float64)
        assert self.embeddings.shape == (len(self.corners), DIMENSIONS)

    def squares_in(self, epsg):
        """Each chip's (xmin, ymin, xmax, ymax) in EPSG:epsg, or None if one is not an axis-aligned 5120 m square there."""
        transform = Transformer.from_crs(self.crs, f"EPSG:{epsg}", always_xy=True)
        squares = []
        for corners in self.corners:
            xs, ys = transform.transform([c[0] for c in corners], [c[1] for c in corners])
            xs, ys = sorted(xs), sorted(ys)
            # Four corners on two x values and two y values, 5120 m apart.
            aligned = xs[1] - xs[0] <= SQUARE_TOLERANCE and xs[3] - xs[2] <= SQUARE_TOLERANCE
            aligned = aligned and ys[1] - ys[0] <= SQUARE_TOLERANCE and ys[3] - ys[2] <= SQUARE_TOLERANCE
            square = (np.mean(xs[:2]), np.mean(ys[:2]), np.mean(xs[2:]), np.mean(ys[2:]))
            width, height = square[2] - square[0], square[3] - square[1]
            sides_ok = abs(width - CHIP) <= SQUARE_TOLERANCE and abs(height - CHIP) <= SQUARE_TOLERANCE
            if not (aligned and sides_ok):
                return None
            squares.append(square)
        return squares

    def utm_zones(self):
        """EPSG codes of the UTM zones (the chips' own and its neighbours) in which every chip is an aligned square."""
        lonlat = Transformer.from_crs(self.crs, "OGC:CRS84", always_xy=True)
        lon, lat = lonlat.transform(*np.mean([c for corners in self.corners for c in corners], axis=0))
        zone = int((lon + 180) // 6) + 1
        base = 32600 if lat >= 0 else 32700
        return [base + z for z in (zone - 1, zone, zone + 1) if 1 <= z <= 60 and self.squares_in(base + z) is not None]


def _ring_corners(polygon):
    """The four distinct corners of a polygon's exterior ring."""
    ring = polygon.GetGeometryRef(0)
    points = [ring.GetPoint_2D(i) for i in range(ring.GetPointCount())]
    if points[0] == points[-1]:
        points = points[:-1]
    assert len(points) == 4, f"a chip polygon has {len(points)} corners, not 4"
    return points


@pytest.fixture(scope="module")
def source(realdata_dir):
    return verified(realdata_dir, CLAY_FILE)


@pytest.fixture(scope="module")
def chips(source):
    return Chips(source)


@pytest.fixture(scope="module")
def zone(chips):
    """The chips' UTM zone as an EPSG code: exactly one zone makes them aligned squares."""
    zones = chips.utm_zones()
    assert len(zones) == 1, f"the chips are axis-aligned {CHIP:.0f} m squares in EPSG {zones}, expected exactly one zone"
    return zones[0]


def test_chips_are_squares_in_utm_36n(zone):
    # PROVENANCE.md, not the file name (01WCP): the polygons are 5120 m squares in UTM 36N.
    assert zone == 32636


def test_output_is_in_the_utm_zone_of_the_chips(layer, zone):
    assert layer.dataProvider().crs().authid() == f"EPSG:{zone}"


def test_pixels_are_chip_sized(layer):
    assert pixel_size(layer.dataProvider()) == pytest.approx((CHIP, CHIP), abs=1e-6)


def test_one_pixel_per_chip_and_no_empty_row_or_column(layer, chips, zone):
    provider = layer.dataProvider()
    squares = chips.squares_in(zone)
    # The chips' lattice, from their own squares: distinct centres along x and along y.
    columns = len({round((s[0] + s[2]) / 2) for s in squares})
    rows = len({round((s[1] + s[3]) / 2) for s in squares})
    assert rows * columns == len(squares), "the real chips fill a rectangle of their lattice"
    assert (provider.ySize(), provider.xSize()) == (rows, columns)
    values = all_values(provider)
    empty = np.isnan(values).all(axis=0)
    assert not empty.any(), f"nodata pixels at (row, col) {np.argwhere(empty).tolist()} of a {rows} x {columns} grid"


def test_every_chip_centre_is_within_1_m_of_the_pixel_holding_its_vector(layer, chips, zone):
    provider = layer.dataProvider()
    assert provider.bandCount() == DIMENSIONS
    values = all_values(provider)
    for index, (square, embedding) in enumerate(zip(chips.squares_in(zone), chips.embeddings)):
        holding = [
            (row, col)
            for row in range(provider.ySize())
            for col in range(provider.xSize())
            if np.allclose(values[:, row, col], embedding, rtol=0, atol=VALUE_TOLERANCE)
        ]
        assert len(holding) == 1, f"chip {index}'s vector is at pixels {holding}, expected exactly one"
        x, y = pixel_centre(provider, *holding[0])
        chip_x, chip_y = (square[0] + square[2]) / 2, (square[1] + square[3]) / 2
        distance = float(np.hypot(x - chip_x, y - chip_y))
        assert distance <= CENTRE_TOLERANCE, (
            f"chip {index} is centred at ({chip_x:.1f}, {chip_y:.1f}) but its vector is at pixel {holding[0]}, "
            f"centred at ({x:.1f}, {y:.1f}): {distance:.1f} m away"
        )


def test_768_bands_with_clay_v0_norms(layer):
    provider = layer.dataProvider()
    assert provider.bandCount() == DIMENSIONS
    values = all_values(provider)
    vectors = values.reshape(DIMENSIONS, -1)[:, ~np.isnan(values.reshape(DIMENSIONS, -1)).all(axis=0)]
    assert vectors.shape[1] > 0, "no valid pixel"
    norms = np.linalg.norm(vectors, axis=0)
    assert np.allclose(norms, NORM, atol=0.05), f"norms {norms.round(3).tolist()}"
