"""GeoParquet patch files as real writers write them, through geoembed:load (PRODUCT=auto and the explicit id).

CRS metadata PROJ cannot build alone, GeoParquet 1.1 (bbox covering, native GeoArrow encodings), files with no
rows, Earth Index files named only by their MGRS square, Major TOM shards without grid_cell, damaged files.
Expectations come from tests/fixtures/geoparquet_variants.py (its rows: lon/lat centre, ring, embedding, WKB).
"""

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.load import detect_product
from tests.fixtures import geoparquet_variants as fx
from tests.unit.conftest import assert_vector, load, load_error
from tests.unit.helpers import QuietLog, spy_parquet_reads

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
REAL_EARTH_INDEX = REALDATA / "earth-index" / "21MNT.parquet"
REAL_EARTH_INDEX_SHA256 = "790ae8aaf09cac8a66abf60f99d6aba0530153fef1066dc82093036154bd5cc0"

LOADABLE = {  # fixture key -> (product id, date every patch must carry or None for the rows' own timestamps)
    "crs-id-only": ("earth-index", "2024-01-01"),
    "crs-partial": ("earth-index", "2024-01-01"),
    "crs-string": ("earth-index", "2024-01-01"),
    "crs-id-only-utm": ("earth-index", "2024-01-01"),
    "covering": ("earth-index", "2024-01-01"),
    "native-point-separated": ("earth-index", "2024-01-01"),
    "native-point-interleaved": ("earth-index", "2024-01-01"),
    "native-polygon-separated": ("earth-index", "2024-01-01"),
    "native-polygon-interleaved": ("earth-index", "2024-01-01"),
    "native-multipolygon-separated": ("earth-index", "2024-01-01"),
    "native-multipolygon-interleaved": ("earth-index", "2024-01-01"),
    "native-polygon-no-geo": ("earth-index", "2024-01-01"),
    "bare-name": ("earth-index", "2023-01-01"),
    "mixed": ("earth-index", "2023-01-01"),
    "major-tom-torchgeo": ("major-tom", None),
    "major-tom-centres": ("major-tom", None),
}


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return fx.build(tmp_path_factory.mktemp("geoparquet-variants"))


def _expected_wkb(key, entry):
    """The lon/lat WKB a reader must give for each fixture row, in file order."""
    if "wkb" in entry:
        return entry["wkb"]
    if key == "major-tom-centres":
        return [r["point_wkb"] for r in entry["rows"]]
    return [r["wkb"] for r in entry["rows"]]


def _wkb_coordinates(wkb):
    """All doubles after the headers of a single-ring little-endian polygon WKB (for approximate comparison)."""
    count = struct.unpack_from("<I", wkb, 9)[0]
    return np.frombuffer(wkb, dtype="<f8", count=2 * count, offset=13)


@pytest.mark.parametrize("product", ["auto", "explicit"])
@pytest.mark.parametrize("key", list(LOADABLE))
def test_variant_loads_each_patch_at_its_centre(variants, tmp_path, key, product):
    product_id, date = LOADABLE[key]
    entry = variants["files"][key]
    rows = entry["rows"]
    loaded = load(tmp_path, f"{key}.tif", product=product_id if product == "explicit" else "auto", source=str(entry["path"]))
    assert loaded.result.product == product_id
    for row in rows:  # the output pixel containing each patch centre holds that patch's vector
        vector = loaded.at_lonlat(*row["centre"])
        assert vector is not None, f"{key}: patch {row['id']} centre is outside the output"
        assert_vector(vector, row["embedding"], (key, row["id"]))
    table = loaded.result.patches
    assert len(table) == len(rows) and table.embeddings.dtype == np.float32
    np.testing.assert_array_equal(table.embeddings, np.stack([r["embedding"] for r in rows]))
    expected = _expected_wkb(key, entry)
    if key == "crs-id-only-utm":  # re-expressed from metres: equal up to PROJ's rounding
        for got, want in zip(table.geometries, expected):
            np.testing.assert_allclose(_wkb_coordinates(bytes(got)), _wkb_coordinates(want), rtol=0, atol=1e-9)
    else:
        assert [bytes(g) for g in table.geometries] == expected
    if date is not None:
        assert set(table.dates) == {date}
        assert loaded.metadata["GEOEMBED_YEAR"] == date[:4]
    else:
        assert table.dates == [f"{r['timestamp']:%Y-%m-%dT%H:%M:%S}" for r in rows]


@pytest.mark.parametrize("key", list(LOADABLE))
def test_auto_detects_the_variant(variants, key):
    found, reason = detect_product(str(variants["files"][key]["path"]))
    assert found == LOADABLE[key][0], reason


def test_major_tom_without_grid_cell_is_not_clay_or_earth_index(variants):
    from geoembed.loaders.products import clay, earth_index, major_tom
    from geoembed.loaders.products.geoparquet import open_parquet

    for key in ("major-tom-torchgeo", "major-tom-centres"):
        path = str(variants["files"][key]["path"])
        schema = open_parquet(path).schema_arrow
        assert "grid_cell" not in schema.names
        assert major_tom.accept(schema, path)
        assert not clay.accept(schema, path) and not earth_index.accept(schema, path)
        # named like an Earth Index or Clay file, it is still Major TOM's
        for other in ("33TWM.parquet", "chips.gpq"):
            assert not clay.accept(schema, other) and not earth_index.accept(schema, other)


def test_crs_warnings(variants, tmp_path):
    """crs: null (geopandas without a CRS) and no `geo` metadata are read as lon/lat, and the log says so."""
    null = load(tmp_path, "null.tif", source=str(variants["files"]["major-tom-torchgeo"]["path"]))
    assert any("crs: null" in w and "lon/lat" in w for w in null.log.warnings), null.log.warnings
    missing = load(tmp_path, "missing.tif", source=str(variants["files"]["native-polygon-no-geo"]["path"]))
    assert any("no GeoParquet CRS" in w for w in missing.log.warnings), missing.log.warnings
    for key in ("crs-id-only", "crs-partial", "crs-string", "covering"):
        quiet = load(tmp_path, f"{key}.tif", source=str(variants["files"][key]["path"]))
        assert quiet.log.warnings == [], (key, quiet.log.warnings)


@pytest.mark.parametrize("key", ["crs-unreadable", "crs-bad-string"])
@pytest.mark.parametrize("product", ["auto", "earth-index"])
def test_unreadable_crs_is_one_line(variants, tmp_path, key, product):
    message = load_error(tmp_path / "out", product=product, source=str(variants["files"][key]["path"]))
    assert fx.NAME in message and "CRS" in message and "could not be read" in message, message
    assert "CRSError" not in message and "Unexpected" not in message


# --- files without rows ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["auto", "earth-index"])
def test_empty_file_says_it_has_no_embeddings(variants, tmp_path, product):
    path = variants["files"]["empty"]["path"]
    for source in (path, path.parent):
        message = load_error(tmp_path / "out", product=product, source=str(source), extent=(14.9, 45.0, 15.1, 45.2))
        assert "no embeddings" in message and path.name in message, message
        assert "extent" not in message.lower(), message


def test_empty_files_beside_others_are_skipped_with_a_warning(variants, tmp_path):
    entry = variants["files"]["mixed"]
    loaded = load(tmp_path, "mixed.tif", source=str(entry["path"]))
    assert any(entry["empty_name"] in w and "no embeddings" in w for w in loaded.log.warnings), loaded.log.warnings
    assert [os.path.basename(s) for s in loaded.result.provenance.sources] == ["33TWM.parquet"]


def test_rows_outside_the_extent_still_blame_the_extent(variants, tmp_path):
    message = load_error(tmp_path / "out", source=str(variants["files"]["mixed"]["path"]), extent=(-30.0, -40.0, -29.9, -39.9))
    assert "extent" in message.lower() and "no embeddings" not in message, message


@pytest.mark.parametrize("product", ["auto", "earth-index"])
def test_real_earth_index_schema_sample_has_no_embeddings(tmp_path, product):
    if not REAL_EARTH_INDEX.is_file():
        pytest.skip(f"real-data sample absent: {REAL_EARTH_INDEX} (../shared/realdata is not part of a plain clone)")
    assert hashlib.sha256(REAL_EARTH_INDEX.read_bytes()).hexdigest() == REAL_EARTH_INDEX_SHA256
    message = load_error(tmp_path / "out", product=product, source=str(REAL_EARTH_INDEX))
    assert "21MNT.parquet" in message and "no embeddings" in message, message
    assert "extent" not in message.lower(), message


# --- GeoParquet 1.1: row groups skipped by statistics, rows picked by the covering ------------------------------------


def _box_around(rows, pad=0.0005):
    """A lon/lat box around the centres of rows (pad ~ 50 m)."""
    lons, lats = [r["centre"][0] for r in rows], [r["centre"][1] for r in rows]
    return (min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad)


@pytest.mark.parametrize("key", ["covering", "native-polygon-separated", "native-point-separated"])
def test_row_groups_outside_the_extent_are_not_read(variants, tmp_path, monkeypatch, key):
    """One row group per row of patches; an extent on the northern row: groups 3+ (over 640 m away) are never read."""
    entry = variants["files"][key]
    north = [r for r in entry["rows"] if r["row"] == 0]
    extent = _box_around(north)
    calls = spy_parquet_reads(monkeypatch)
    loaded = load(tmp_path, f"{key}.tif", product="earth-index", source=str(entry["path"]), extent=extent)
    reads = [c for c in calls if c[0] == fx.NAME]
    assert reads and all(c[1] == "read_row_group" for c in reads), reads
    groups = {c[2] for c in reads}
    assert 0 in groups and not groups & set(range(3, entry["row_groups"])), f"far row groups were read: {sorted(groups)}"
    embedding_groups = {c[2] for c in reads if "embedding" in c[3]}
    assert embedding_groups and embedding_groups <= {0, 1, 2}, embedding_groups
    if key == "covering":  # rows are picked from the bbox column before any geometry is read
        first = [c[3] for c in reads if c[2] == 0]
        assert first[0] == ("bbox",), first
    for row in north:
        assert_vector(loaded.at_lonlat(*row["centre"]), row["embedding"], row["id"])


def test_covering_picks_rows_without_decoding_the_others(variants, tmp_path):
    """Rows south of the first GUARD_ROWS carry broken WKB: reading the north by the covering never touches them."""
    entry = variants["files"]["covering-guard"]
    north = [r for r in entry["rows"] if r["row"] == 0]
    loaded = load(tmp_path, "guard.tif", source=str(entry["path"]), extent=_box_around(north))
    for row in north:
        assert_vector(loaded.at_lonlat(*row["centre"]), row["embedding"], row["id"])
    table = loaded.result.patches
    by_id = {r["id"]: r["wkb"] for r in entry["rows"] if r["row"] < entry["good_rows"]}
    assert table.ids and all(bytes(g) == by_id[i] for g, i in zip(table.geometries, table.ids))


# --- unexpected failures become one line -----------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["auto", "earth-index"])
def test_broken_wkb_is_one_line_naming_the_file(variants, tmp_path, product):
    message = load_error(tmp_path / "out", product=product, source=str(variants["files"]["covering-guard"]["path"]))
    assert message.startswith(f"Cannot read {fx.NAME}: ") and "damaged" in message and "Earth Index" in message, message


def test_embedding_column_of_text_is_one_line(tmp_path):
    import pyarrow as pa

    from tests.fixtures.fields import write_parquet

    rows = fx.patches()[:4]
    table = pa.table(
        {
            "embedding": pa.array(["not", "a", "vector", "!"]),
            "centre_lon": [r["centre"][0] for r in rows],
            "centre_lat": [r["centre"][1] for r in rows],
        }
    )
    path = write_parquet(table, tmp_path / "in" / "part_00001-00001.parquet", "snappy")
    for product in ("auto", "major-tom"):
        message = load_error(tmp_path / "out", product=product, source=str(path))
        assert message.startswith("Cannot read part_00001-00001.parquet: ") and "Major TOM" in message, message


def test_io_error_while_reading_is_one_line(variants, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def failing(self, *args, **kwargs):
        raise OSError("Corrupt snappy compressed data.\nsecond line")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", failing)
    message = load_error(tmp_path / "out", source=str(variants["files"]["major-tom-centres"]["path"]))
    assert "DINOv2_grid_sample_center_384x384_244k.parquet" in message and "Corrupt snappy" in message, message
    assert "second line" not in message


def test_cancel_and_our_errors_pass_through(variants):
    from geoembed.loaders.products import earth_index
    from geoembed.loaders.products.patch_files import read_patches

    path = str(variants["files"]["covering"]["path"])
    with pytest.raises(Cancelled):
        read_patches([path], None, earth_index.LAYOUT, QuietLog(), is_cancelled=lambda: True)
    with pytest.raises(GeoEmbedError) as info:
        read_patches([str(variants["files"]["crs-unreadable"]["path"])], None, earth_index.LAYOUT, QuietLog())
    assert not str(info.value).startswith("Cannot read"), "a GeoEmbedError was re-worded"


# --- native decoding, row by row against an independent reading ------------------------------------------------------


def test_native_batch_handles_nulls_empties_and_slices():
    import pyarrow as pa

    from geoembed.loaders.products.geoparquet import NativeBatch

    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
    hole = [(0.5, 0.25), (0.5, 0.75), (1.0, 0.75), (0.5, 0.25)]
    far = [(10.0, -5.0), (11.0, -5.0), (11.0, -4.0), (10.0, -5.0)]
    polygons = [[square, hole], None, [], [far], [square]]
    coords = pa.StructArray.from_arrays(
        [
            pa.array([p[0] for poly in polygons if poly for ring in poly for p in ring]),
            pa.array([p[1] for poly in polygons if poly for ring in poly for p in ring]),
        ],
        names=["x", "y"],
    )
    array = pa.array(polygons, pa.list_(pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64())]))))
    assert array.flatten().flatten().to_pylist() == coords.to_pylist()
    for offset in (0, 1):
        sliced = array.slice(offset)
        batch = NativeBatch.from_arrow(sliced, "polygon")
        bounds = batch.bounds()
        for row, polygon in enumerate(polygons[offset:]):
            if not polygon:
                assert np.isnan(bounds[row]).all()
                continue
            points = np.array([p for ring in polygon for p in ring])
            np.testing.assert_array_equal(bounds[row], [*points.min(axis=0), *points.max(axis=0)])
        wanted = [row for row, polygon in enumerate(polygons[offset:]) if polygon]
        for row, wkb in zip(wanted, batch.wkb(wanted)):
            polygon = polygons[offset + row]
            expected = struct.pack("<BII", 1, 3, len(polygon)) + b"".join(
                struct.pack("<I", len(ring)) + np.asarray(ring, dtype="<f8").tobytes() for ring in polygon
            )
            assert wkb == expected


def test_native_batch_of_many_rows_matches_numpy():
    """10^5 polygons of 5 vertices: bounds equal numpy's row-wise min/max (decoding works on whole arrays)."""
    import pyarrow as pa

    from geoembed.loaders.products.geoparquet import NativeBatch

    rng = np.random.default_rng(5)
    n = 100_000
    xy = rng.uniform(-180, 180, size=(n, 5, 2))
    coords = pa.FixedSizeListArray.from_arrays(pa.array(xy.ravel()), 2)
    rings = pa.ListArray.from_arrays(pa.array(np.arange(0, 5 * n + 1, 5, dtype=np.int32)), coords)
    polygons = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), rings)
    batch = NativeBatch.from_arrow(polygons, "polygon")
    np.testing.assert_array_equal(batch.bounds(), np.column_stack([xy.min(axis=1), xy.max(axis=1)]))
    picked = [0, n // 2, n - 1]
    for row, wkb in zip(picked, batch.wkb(picked)):
        assert wkb == struct.pack("<BIII", 1, 3, 1, 5) + xy[row].astype("<f8").tobytes()


def test_native_batch_points_and_multipoints():
    import pyarrow as pa

    from geoembed.loaders.products.geoparquet import NativeBatch

    xy = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    points = NativeBatch.from_arrow(pa.array([{"x": 1.0, "y": 2.0}, None, {"x": -3.5, "y": 0.25}], xy), "point")
    np.testing.assert_array_equal(points.bounds()[[0, 2]], [[1.0, 2.0, 1.0, 2.0], [-3.5, 0.25, -3.5, 0.25]])
    assert np.isnan(points.bounds()[1]).all()
    assert points.wkb([2]) == [struct.pack("<BIdd", 1, 1, -3.5, 0.25)]
    groups = [[(1.0, 2.0), (3.0, 4.0)], None, [(5.0, 6.0)]]
    interleaved = pa.array(groups, pa.list_(pa.list_(pa.float64(), 2)))
    multi = NativeBatch.from_arrow(interleaved, "multipoint")
    np.testing.assert_array_equal(multi.bounds()[[0, 2]], [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 5.0, 6.0]])
    for row, wkb in zip([0, 2], multi.wkb([0, 2])):
        parts = b"".join(struct.pack("<BIdd", 1, 1, x, y) for x, y in groups[row])
        assert wkb == struct.pack("<BII", 1, 4, len(groups[row])) + parts
