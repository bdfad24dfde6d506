"""The fixture mirror carries what real AEF files carry (formats.md §1.3-1.5), so tests on it mean something."""

import json
import re

import pyarrow.parquet as pq
import pytest
from pyproj import Transformer

from geoembed.loaders.products.geoparquet import wkb_bounds
from tests.support.tiff_tags import first_ifd_tags

NAME = re.compile(r"^(?P<year>\d{4})/(?P<zone>\d{1,2}[NS])/x[0-9a-z]{16}-(?P<yoff>\d{10})-(?P<xoff>\d{10})\.tiff$")


@pytest.fixture(scope="module")
def annual(aef_mirror):
    return aef_mirror / "v1" / "annual"


@pytest.fixture(scope="module")
def tiles(annual):
    found = sorted(p for p in annual.rglob("*") if p.is_file() and p.suffix in (".tif", ".tiff"))
    assert found
    return found


def _ascii(values):
    return b"".join(values).rstrip(b"\0").decode("ascii")


def test_every_tile_path_follows_the_published_pattern(annual, tiles, aef_specs):
    relative = sorted(p.relative_to(annual).as_posix() for p in tiles)
    assert relative == sorted(spec.relative_path for spec in aef_specs)
    for name in relative:
        match = NAME.match(name)
        assert match, name
        assert match["yoff"] in ("0000000000", "0000008192") and match["xoff"] in ("0000000000", "0000008192")


def test_tiles_carry_the_real_tags(annual, aef_specs):
    for spec in aef_specs:
        tags = first_ifd_tags(annual / spec.relative_path)
        assert (tags[256][0], tags[257][0]) == (spec.width, spec.height)
        # south-up georeferencing: ModelTransformationTag, never PixelScale + Tiepoint
        assert 34264 in tags
        matrix = tags[34264]
        assert len(matrix) == 16
        assert matrix[:8] == (10.0, 0.0, 0.0, spec.west, 0.0, 10.0, 0.0, spec.south)
        assert matrix[15] == 1.0
        assert 33550 not in tags and 33922 not in tags
        assert tags[277] == (64,)  # SamplesPerPixel
        assert tags[258] == (8,) * 64  # BitsPerSample
        assert tags[339] == (2,) * 64  # SampleFormat: signed integer
        assert tags[284] == (2,)  # PlanarConfiguration: separate
        assert 322 in tags and 323 in tags  # tiled
        assert 324 in tags and 325 in tags  # TileOffsets / TileByteCounts
        assert _ascii(tags[42113]) == "-128"  # GDAL_NODATA
        item = r'<Item name="DESCRIPTION" sample="(\d+)" role="description">(A\d\d)</Item>'
        descriptions = re.findall(item, _ascii(tags[42112]))
        assert [(int(s), n) for s, n in descriptions] == [(i, f"A{i:02d}") for i in range(64)]
        keys = tags[34735]
        entries = {keys[i]: keys[i + 3] for i in range(4, len(keys), 4)}
        assert entries[3072] == spec.epsg  # ProjectedCSTypeGeoKey


def test_zone_folder_matches_the_crs(aef_specs):
    for spec in aef_specs:
        hemisphere = 32600 if spec.zone.endswith("N") else 32700
        assert spec.epsg == hemisphere + int(spec.zone[:-1])


REQUIRED = [
    "fid",
    "path",
    "year",
    "crs",
    "utm_zone",
    "utm_west",
    "utm_south",
    "utm_east",
    "utm_north",
    "wgs84_west",
    "wgs84_south",
    "wgs84_east",
    "wgs84_north",
    "geometry",
]


def test_index_has_the_real_columns_and_geo_metadata(annual, aef_specs):
    schema = pq.read_schema(annual / "aef_index.parquet")
    assert set(REQUIRED) <= set(schema.names)
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    rows = pq.read_table(annual / "aef_index.parquet").to_pylist()
    assert len(rows) == len(aef_specs)
    assert len({row["fid"] for row in rows}) == len(rows)
    by_path = {row["path"]: row for row in rows}
    for spec in aef_specs:
        row = by_path[f"s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/{spec.relative_path}"]
        assert row["year"] == spec.year and row["utm_zone"] == spec.zone and row["crs"] == f"EPSG:{spec.epsg}"
        assert (row["utm_west"], row["utm_south"], row["utm_east"], row["utm_north"]) == spec.bounds
        box = wkb_bounds(row["geometry"])
        assert box == pytest.approx((row["wgs84_west"], row["wgs84_south"], row["wgs84_east"], row["wgs84_north"]), abs=1e-12)
        # footprints are clipped to the zone's longitude band
        zone = int(spec.zone[:-1])
        assert -180 + 6 * (zone - 1) - 1e-9 <= row["wgs84_west"] and row["wgs84_east"] <= -180 + 6 * zone + 1e-9
        # and contain the tile centre's latitude (its longitude may lie beyond the clipped zone edge)
        cx, cy = (spec.bounds[0] + spec.bounds[2]) / 2, (spec.bounds[1] + spec.bounds[3]) / 2
        lon, lat = Transformer.from_crs(f"EPSG:{spec.epsg}", "EPSG:4326", always_xy=True).transform(cx, cy)
        assert row["wgs84_south"] <= lat <= row["wgs84_north"]
        assert row["wgs84_west"] <= min(lon, row["wgs84_east"])


def test_csv_index_sits_beside_the_parquet(annual):
    header = (annual / "aef_index.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "WKT" in header and "path" in header and "geometry" not in header
