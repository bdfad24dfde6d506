"""AEF index queries (GeoParquet), WKB envelopes and placing index paths inside a mirror."""

import json
import os
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.products.aef import read_index, resolve_index_path
from geoembed.loaders.products.geoparquet import wkb_bounds
from tests.unit.helpers import assert_one_line

WGS84 = ("wgs84_west", "wgs84_south", "wgs84_east", "wgs84_north")


@pytest.fixture(scope="module")
def index_file(aef_mirror):
    return aef_mirror / "v1" / "annual" / "aef_index.parquet"


@pytest.fixture(scope="module")
def index_rows(index_file):
    return pq.read_table(index_file).to_pylist()


def _expected(rows, extent, year):
    west, south, east, north = extent
    return sorted(
        row["path"]
        for row in rows
        if row["year"] == year
        and row["wgs84_east"] >= west
        and row["wgs84_west"] <= east
        and row["wgs84_north"] >= south
        and row["wgs84_south"] <= north
    )


EXTENTS = {
    "south-31N-only": ((5.98, 44.995, 5.99, 45.0), 1),
    "both-31N": ((5.98, 45.005, 5.99, 45.015), 2),
    "across-6E": ((5.995, 44.995, 6.005, 45.0), 2),
    "three-tiles": ((5.99, 45.005, 6.01, 45.02), 3),
    "sydney": ((151.19, -33.86, 151.20, -33.85), 1),
    "nowhere": ((-40.0, 10.0, -39.0, 11.0), 0),
    "between": ((6.03, 44.995, 6.04, 45.0), 0),
}


@pytest.mark.parametrize("name", list(EXTENTS))
def test_bbox_filter_returns_exactly_the_intersecting_tiles(index_file, index_rows, name):
    extent, count = EXTENTS[name]
    rows, years = read_index(str(index_file), extent, 2024)
    expected = _expected(index_rows, extent, 2024)
    assert len(expected) == count  # the extents were chosen to hit this many tiles
    assert [row["path"] for row in rows] == expected
    assert years == [2023, 2024]
    for row in rows:
        assert row["year"] == 2024
        assert row["crs"].startswith("EPSG:32") and row["utm_zone"][-1] in "NS"


def test_year_filter(index_file, index_rows):
    extent = (5.98, 44.995, 5.99, 45.0)
    rows, _ = read_index(str(index_file), extent, 2023)
    assert [row["path"] for row in rows] == _expected(index_rows, extent, 2023)
    assert len(rows) == 1 and "/2023/31N/" in rows[0]["path"]


def test_no_year_picks_the_latest_year_among_intersecting_tiles(index_file, tmp_path):
    rows, _ = read_index(str(index_file), (5.98, 44.995, 5.99, 45.0), None)
    assert [row["year"] for row in rows] == [2024]
    # drop the 2024 copy of that tile: the latest year *there* is 2023, although the index has 2024 elsewhere
    table = pq.read_table(index_file)
    keep = [not (row["year"] == 2024 and row["utm_zone"] == "31N") for row in table.select(["year", "utm_zone"]).to_pylist()]
    pruned = tmp_path / "pruned.parquet"
    pq.write_table(table.filter(pa.array(keep)), pruned)
    rows, years = read_index(str(pruned), (5.98, 44.995, 5.99, 45.0), None)
    assert years == [2023, 2024]
    assert [row["year"] for row in rows] == [2023]
    assert "/2023/31N/" in rows[0]["path"]
    # where both years exist, the latest wins
    rows, _ = read_index(str(pruned), (151.19, -33.86, 151.20, -33.85), None)
    assert [row["year"] for row in rows] == [2024]


def test_unknown_year_lists_the_available_years(index_file):
    with pytest.raises(GeoEmbedError) as info:
        read_index(str(index_file), (5.98, 44.995, 5.99, 45.0), 2019)
    message = assert_one_line(info.value)
    assert "2019" in message and "2023" in message and "2024" in message


def test_index_without_path_or_year_raises(index_file, tmp_path):
    table = pq.read_table(index_file)
    for dropped in (["path"], ["year"], ["path", "year"]):
        bad = tmp_path / f"no-{'-'.join(dropped)}.parquet"
        pq.write_table(table.drop(dropped), bad)
        with pytest.raises(GeoEmbedError) as info:
            read_index(str(bad), (5.98, 44.995, 5.99, 45.0), 2024)
        message = assert_one_line(info.value)
        assert all(column in message for column in dropped)


def test_not_a_parquet_file_raises(tmp_path):
    bad = tmp_path / "aef_index.parquet"
    bad.write_text("fid,path,year\n")
    with pytest.raises(GeoEmbedError):
        read_index(str(bad), (0, 0, 1, 1), None)


def _without_bbox(index_file, geometry_name="geometry"):
    table = pq.read_table(index_file)
    geo = json.loads(table.schema.metadata[b"geo"])
    table = table.drop(list(WGS84))
    if geometry_name != "geometry":
        table = table.rename_columns([geometry_name if n == "geometry" else n for n in table.column_names])
        geo["primary_column"] = geometry_name
        geo["columns"] = {geometry_name: geo["columns"]["geometry"]}
    return table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})


@pytest.mark.parametrize("geometry_name", ["geometry", "footprint"])
@pytest.mark.parametrize("name", list(EXTENTS))
def test_index_without_wgs84_columns_uses_the_geometry(index_file, index_rows, tmp_path, geometry_name, name):
    extent, count = EXTENTS[name]
    path = tmp_path / "geometry-only.parquet"
    pq.write_table(_without_bbox(index_file, geometry_name), path, row_group_size=2)
    assert not set(WGS84) & set(pq.read_schema(path).names)
    rows, years = read_index(str(path), extent, 2024)
    assert [row["path"] for row in rows] == _expected(index_rows, extent, 2024)
    assert len(rows) == count and years == [2023, 2024]
    assert all(geometry_name not in row for row in rows)
    rows, _ = read_index(str(path), (5.98, 44.995, 5.99, 45.0), None)
    assert [row["year"] for row in rows] == [2024]


def test_index_without_bbox_or_geometry_raises(index_file, tmp_path):
    path = tmp_path / "bare.parquet"
    pq.write_table(pq.read_table(index_file).drop(list(WGS84) + ["geometry"]).replace_schema_metadata(None), path)
    with pytest.raises(GeoEmbedError) as info:
        read_index(str(path), (5.98, 44.995, 5.99, 45.0), 2024)
    assert_one_line(info.value)


# --- WKB ---------------------------------------------------------------------------------------


def _ring(order, points, dims=2):
    body = struct.pack(order + "I", len(points))
    for point in points:
        body += struct.pack(order + "d" * dims, *point)
    return body


def _header(order, gtype):
    return struct.pack(order + "BI", 1 if order == "<" else 0, gtype)


SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 3.0), (0.0, 3.0), (0.0, 0.0)]
HOLE = [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]


def test_wkb_point():
    assert wkb_bounds(_header("<", 1) + struct.pack("<dd", 6.5, -45.25)) == (6.5, -45.25, 6.5, -45.25)
    assert wkb_bounds(_header("<", 1) + struct.pack("<dd", float("nan"), float("nan"))) is None  # empty point


def test_wkb_linestring():
    assert wkb_bounds(_header("<", 2) + _ring("<", [(3.0, -1.0), (-2.0, 5.0), (1.0, 1.0)])) == (-2.0, -1.0, 3.0, 5.0)


def test_wkb_polygon_with_hole():
    wkb = _header("<", 3) + struct.pack("<I", 2) + _ring("<", SQUARE) + _ring("<", HOLE)
    assert wkb_bounds(wkb) == (0.0, 0.0, 4.0, 3.0)


def test_wkb_multipolygon():
    second = [(10.0, -7.0), (12.0, -7.0), (12.0, -5.0), (10.0, -7.0)]
    parts = [
        _header("<", 3) + struct.pack("<I", 1) + _ring("<", SQUARE),
        _header(">", 3) + struct.pack(">I", 1) + _ring(">", second),
    ]
    wkb = _header("<", 6) + struct.pack("<I", 2) + b"".join(parts)  # mixed byte orders are legal WKB
    assert wkb_bounds(wkb) == (0.0, -7.0, 12.0, 3.0)


def test_wkb_big_endian_polygon():
    wkb = _header(">", 3) + struct.pack(">I", 1) + _ring(">", [(5.97, 44.98), (6.0, 44.98), (6.0, 45.01), (5.97, 44.98)])
    assert wkb_bounds(wkb) == (5.97, 44.98, 6.0, 45.01)


def test_wkb_polygon_from_bytes_and_memoryview_alike(index_file):
    geometry = pq.read_table(index_file, columns=["geometry", *WGS84]).to_pylist()
    for row in geometry:
        box = wkb_bounds(row["geometry"])
        assert box == pytest.approx(tuple(row[c] for c in WGS84), abs=1e-12)


def test_wkb_iso_z_polygon():
    ring = [(x, y, 100.0 + x) for x, y in SQUARE]
    wkb = _header("<", 1003) + struct.pack("<I", 1) + _ring("<", ring, dims=3)
    assert wkb_bounds(wkb) == (0.0, 0.0, 4.0, 3.0)


def test_wkb_ewkb_with_srid():
    wkb = _header("<", 0x20000003) + struct.pack("<I", 4326) + struct.pack("<I", 1) + _ring("<", SQUARE)
    assert wkb_bounds(wkb) == (0.0, 0.0, 4.0, 3.0)


@pytest.mark.parametrize(
    "flag,dims",
    [(0x80000000, 3), (0x40000000, 3), (0xC0000000, 4), (0xA0000000, 3)],
    ids=["ewkb-z", "ewkb-m", "ewkb-zm", "ewkb-z-srid"],
)
def test_wkb_ewkb_z_and_m_polygons(flag, dims):
    """The docstring promises EWKB: its Z/M flags must give 3 or 4 ordinates per point."""
    ring = [(x, y, 7.0, 9.0)[:dims] for x, y in SQUARE]
    srid = struct.pack("<I", 4326) if flag & 0x20000000 else b""
    wkb = _header("<", flag | 3) + srid + struct.pack("<I", 1) + _ring("<", ring, dims=dims)
    assert wkb_bounds(wkb) == (0.0, 0.0, 4.0, 3.0)


def test_wkb_ewkb_z_multipoint():
    points = [(1.0, 2.0, 50.0), (-3.0, 8.0, 60.0)]
    parts = b"".join(_header("<", 0x80000001) + struct.pack("<ddd", *p) for p in points)
    wkb = _header("<", 0x80000004) + struct.pack("<I", 2) + parts
    assert wkb_bounds(wkb) == (-3.0, 2.0, 1.0, 8.0)


def test_wkb_unsupported_type_raises():
    with pytest.raises(GeoEmbedError):
        wkb_bounds(_header("<", 17) + b"\0" * 16)


# --- index paths -------------------------------------------------------------------------------

S3 = "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/2024/31N/x1de979882fc62834-0000000000-0000000000.tiff"
GS = "gs://alphaearth_foundations/satellite_embedding/v1/annual/2024/31N/x1de979882fc62834-0000000000-0000000000.tiff"
RELATIVE = "2024/31N/x1de979882fc62834-0000000000-0000000000.tiff"


@pytest.mark.parametrize("path", [S3, GS, RELATIVE], ids=["s3", "gs", "relative"])
def test_resolve_index_path_with_a_local_index(tmp_path, path):
    index = tmp_path / "mirror" / "v1" / "annual" / "aef_index.parquet"
    expected = os.path.join(str(tmp_path / "mirror" / "v1" / "annual"), "2024", "31N", os.path.basename(RELATIVE))
    assert os.path.normpath(resolve_index_path(str(index), path)) == os.path.normpath(expected)


def test_resolve_index_path_with_a_relative_local_index(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = resolve_index_path(os.path.join("mirror", "aef_index.parquet"), S3)
    assert os.path.isabs(got)
    assert os.path.normpath(got) == os.path.normpath(os.path.join(str(tmp_path), "mirror", *RELATIVE.split("/")))


@pytest.mark.parametrize("path", [S3, GS, RELATIVE], ids=["s3", "gs", "relative"])
def test_resolve_index_path_with_an_http_index(path):
    index = "http://127.0.0.1:8765/mirror/v1/annual/aef_index.parquet"
    assert resolve_index_path(index, path) == "http://127.0.0.1:8765/mirror/v1/annual/" + RELATIVE


def test_resolve_index_path_keeps_urls_and_absolute_paths_only_when_allowed(tmp_path):
    """Outside the index's own folder or host only with the opt-out (test_index_confinement.py has the rest)."""
    url = "https://data.source.coop/tge-labs/aef/v1/annual/" + RELATIVE
    assert resolve_index_path(str(tmp_path / "aef_index.parquet"), url, allow_outside=True) == url
    absolute = str(tmp_path / "elsewhere" / "tile.tiff")
    assert resolve_index_path(str(tmp_path / "mirror" / "aef_index.parquet"), absolute, allow_outside=True) == absolute
    for path in (url, absolute):
        with pytest.raises(GeoEmbedError, match="outside the mirror"):
            resolve_index_path(str(tmp_path / "mirror" / "aef_index.parquet"), path)


@pytest.mark.parametrize("path", ["s3://bucket/some/other/layout/tile.tiff", "gs://bucket/v1/tile.tiff"])
def test_resolve_index_path_without_layout_marker_raises(tmp_path, path):
    with pytest.raises(GeoEmbedError) as info:
        resolve_index_path(str(tmp_path / "aef_index.parquet"), path)
    assert "v1/annual/" in assert_one_line(info.value)
