"""The product catalog: complete entries, and storage/egress cost maths checked against independent computations."""

import math

import pytest

from geoembed.loaders import catalog
from geoembed.loaders.errors import GeoEmbedError
from tests.unit.helpers import assert_one_line

IDS = ("aef", "tessera", "clay", "earth-index", "major-tom", "copernicus-embed", "presto", "esd", "generic")
PUBLISHED = IDS[:-1]  # "generic" is any other embedding raster: resolution, dims and size per vector come from the file

# Stored bytes of one vector, from formats.md (dims x dtype of what is published):
STORED_BYTES = {
    "aef": 64 * 1,  # 64 int8
    "tessera": 128 * 1 + 4,  # 128 int8 + one float32 scale per pixel
    "clay": 768 * 4,  # float32 (v0; v1.5 is 1024-d)
    "earth-index": 384 * 4,  # float32
    "major-tom": 2048 * 4,  # float32, the largest model (SSL4EO)
    "copernicus-embed": 768 * 4,  # float32
    "presto": 128 * 2,  # uint16
    "esd": 13 * 2,  # 12 monthly uint16 codes + QA
}
NATIVE_M = {"aef": 10, "tessera": 10, "presto": 10, "esd": 30, "earth-index": 320, "clay": 5120, "major-tom": 2240}


def test_every_product_is_complete():
    assert tuple(catalog.PRODUCTS) == IDS
    for product_id in PUBLISHED:
        product = catalog.PRODUCTS[product_id]
        assert product.id == product_id
        assert product.kind in ("pixel", "patch")
        assert product.resolution_m > 0 and product.dims > 0 and product.bytes_per_vector > 0
        for name in ("name", "dtype", "licence", "attribution", "public_location", "dequantization"):
            text = getattr(product, name)
            assert isinstance(text, str) and text.strip(), f"{product_id}: empty {name}"
        assert product.public_location.startswith("https://")
        assert isinstance(product.years, tuple)
        assert all(isinstance(year, int) and 2000 <= year <= 2030 for year in product.years)
        assert list(product.years) == sorted(product.years)
        text = catalog.years_text(product)
        assert text == "static (no year)" if not product.years else str(product.years[0]) in text


def test_the_generic_product_takes_everything_from_the_file():
    generic = catalog.PRODUCTS["generic"]
    assert generic.id == "generic" and generic.kind == "pixel"
    assert generic.resolution_m is None and generic.dims is None and generic.years == ()
    assert catalog.years_text(generic) == "from the file" and catalog.dims_text(generic) == "from the file"
    assert catalog.cost_for_area(generic, 1e8) is None
    for name in ("name", "dtype", "licence", "attribution", "dequantization"):
        assert getattr(generic, name).strip(), f"generic: empty {name}"
    assert "from the file" in generic.dtype and "NaN" in generic.dequantization


def test_float_alphaearth_and_tessera_water_are_documented():
    assert "already de-quantised" in catalog.AEF.dequantization
    assert "landmask" in catalog.TESSERA.dequantization and "exports" in catalog.TESSERA.dequantization


def test_kinds_resolutions_and_bytes():
    kinds = {pid: p.kind for pid, p in catalog.PRODUCTS.items()}
    assert {pid for pid, kind in kinds.items() if kind == "patch"} == {"clay", "earth-index", "major-tom"}
    for product_id, metres in NATIVE_M.items():
        assert catalog.PRODUCTS[product_id].resolution_m == metres, product_id
    # 0.25 degree of latitude/longitude at the equator is about 27.8 km
    assert catalog.PRODUCTS["copernicus-embed"].resolution_m == pytest.approx(0.25 * 111_320, rel=0.01)
    for product_id, size in STORED_BYTES.items():
        assert catalog.PRODUCTS[product_id].bytes_per_vector == size, product_id
    assert catalog.PRODUCTS["esd"].dims == 72 and catalog.PRODUCTS["tessera"].dims == 128


@pytest.mark.parametrize("product_id", PUBLISHED)
def test_cost_for_a_10_km_square(product_id):
    product = catalog.PRODUCTS[product_id]
    area = 10_000.0 * 10_000.0
    vectors = area / product.resolution_m / product.resolution_m
    gigabytes = vectors * STORED_BYTES[product_id] / 1_000_000_000
    cost = catalog.cost_for_area(product, area)
    assert cost.vectors == pytest.approx(vectors, rel=1e-12)
    assert cost.gigabytes == pytest.approx(gigabytes, rel=1e-12)
    assert cost.storage_usd_month == pytest.approx(gigabytes * 0.023, rel=1e-12)
    assert cost.egress_usd == pytest.approx(gigabytes * 0.09, rel=1e-12)


def test_cost_numbers_by_hand():
    # AEF over 10 km x 10 km: 1e6 vectors x 64 B = 0.064 GB -> $0.001472 a month, $0.00576 to download
    cost = catalog.cost_for_area(catalog.PRODUCTS["aef"], 1e8)
    assert (cost.vectors, cost.gigabytes) == (pytest.approx(1e6), pytest.approx(0.064))
    assert cost.storage_usd_month == pytest.approx(0.001472) and cost.egress_usd == pytest.approx(0.00576)
    # Tessera: 1e6 x 132 B = 0.132 GB
    assert catalog.cost_for_area(catalog.PRODUCTS["tessera"], 1e8).egress_usd == pytest.approx(0.01188)
    assert "0.023" in catalog.PRICES_NOTE and "0.09" in catalog.PRICES_NOTE


def _ellipsoid_area(west, south, east, north, steps=2000):
    """Area of a lon/lat rectangle on WGS 84 by integrating M(phi) * N(phi) cos(phi) dphi dlambda (midpoint rule)."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    total = 0.0
    dphi = math.radians(north - south) / steps
    for i in range(steps):
        phi = math.radians(south) + (i + 0.5) * dphi
        w = 1 - e2 * math.sin(phi) ** 2
        meridional = a * (1 - e2) / w**1.5
        prime = a / math.sqrt(w)
        total += meridional * prime * math.cos(phi) * dphi
    return total * math.radians(east - west)


def test_lonlat_area_of_one_degree_at_the_equator():
    area = catalog.lonlat_area_m2(0.0, 0.0, 1.0, 1.0)
    assert area == pytest.approx(12_308e6, rel=0.005)
    assert area == pytest.approx(_ellipsoid_area(0.0, 0.0, 1.0, 1.0), rel=1e-4)


@pytest.mark.parametrize(
    "box",
    [
        (10.0, 45.0, 11.0, 46.0),
        (-72.5, -40.0, -70.0, -38.5),
        (170.0, 60.0, 179.0, 70.0),
        (-10.0, 35.0, 30.0, 60.0),  # a Europe-wide map canvas
        (-180.0, -90.0, 180.0, 90.0),  # the whole world: 510.07 million km2
    ],
)
def test_lonlat_area_elsewhere(box):
    """A lon/lat rectangle is bounded by parallels, not by geodesics between its corners."""
    assert catalog.lonlat_area_m2(*box) == pytest.approx(_ellipsoid_area(*box), rel=1e-4)


def test_unknown_product_id():
    with pytest.raises(GeoEmbedError) as info:
        catalog.product("tesera")
    message = assert_one_line(info.value)
    assert "tesera" in message and all(product_id in message for product_id in IDS)
    assert catalog.product("esd") is catalog.PRODUCTS["esd"]
