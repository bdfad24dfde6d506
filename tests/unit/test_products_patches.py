"""Patch products (Clay, Earth Index, Major TOM) through geoembed:load: rasterised at patch size, PatchTable, row groups.

Expectations come from the fixtures: their chip/fragment lists and expected_at(rows, lon, lat) (the latest date, then
the nearest fragment centre, for Major TOM; the latest date for Clay v0).
"""

import datetime as dt
import os

import numpy as np
import pytest

from geoembed.loaders.products.patch_files import PatchTable
from tests.fixtures import clay as clay_fx
from tests.fixtures import earth_index as ei_fx
from tests.fixtures import major_tom as mt_fx
from tests.fixtures.fields import polygon_wkb, ring_bounds, to_lonlat, utm_epsg
from tests.unit.conftest import NODATA, assert_vector, load
from tests.unit.helpers import spy_parquet_reads


def _meets(bounds, extent):
    return bounds[0] <= extent[2] and extent[0] <= bounds[2] and bounds[1] <= extent[3] and extent[1] <= bounds[3]


def _bounds(row):
    return row.get("bounds") or ring_bounds(row["ring"])


def _between_centres(rows, first, last):
    """An extent from the centre of one patch to the centre of another (its edges are mid-patch, never on an edge)."""
    (x0, y0), (x1, y1) = rows[first]["centre"], rows[last]["centre"]
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def check_raster(loaded, rows, expected_of, margin, meets=lambda row: True):
    """Every output pixel whose centre is unambiguous (same expected patch within margin metres around it).

    expected_of(rows, lon, lat) is the fixture's rule. A pixel whose expected patch meets the extent (meets(row), by
    its stored geometry) must hold it exactly; a border pixel whose patch lies outside the extent may hold it, the
    patch the extent's own rows give, or nodata (reading a margin of patches around the extent is allowed).
    Returns {id(vector): count} of the expected vectors seen (None counted under 'nodata').
    """
    by_id = {id(r["embedding"]): r for r in rows}
    inside = [r for r in rows if meets(r)]
    c, a, _, f, _, e = loaded.geotransform
    seen = {}
    offsets = [(dx, dy) for dx in (-margin, 0, margin) for dy in (-margin, 0, margin)]
    for row, col in np.ndindex(loaded.height, loaded.width):
        x, y = c + a * (col + 0.5), f + e * (row + 0.5)
        lons, lats = to_lonlat(loaded.crs, [x + dx for dx, _ in offsets], [y + dy for _, dy in offsets])
        around = [expected_of(rows, lon, lat) for lon, lat in zip(lons, lats)]
        if any(v is not around[0] for v in around):
            continue  # near a patch edge or a nearest-centre tie: either answer is defensible
        expected, where = around[4], (row, col, float(lons[4]), float(lats[4]))  # offsets[4] is (0, 0)
        actual = loaded.values[:, row, col]
        if expected is None or meets(by_id[id(expected)]):
            assert_vector(actual, expected, where)
        else:
            allowed = [None, expected, expected_of(inside, lons[4], lats[4])]
            assert any(
                np.all(actual == NODATA) if v is None else np.allclose(actual, v, rtol=1e-6, atol=1e-6) for v in allowed
            ), f"{where}: a border pixel holds neither nodata nor a patch containing its centre"
            continue
        key = "nodata" if expected is None else id(expected)
        seen[key] = seen.get(key, 0) + 1
    return seen


def _meets_extent(extent, points=False):
    """Predicate: a fixture row's stored geometry (its centre for point files) meets the extent."""
    return lambda row: _meets(row["centre"] * 2 if points else _bounds(row), extent)


def check_table(table, rows, extent, key, dims):
    """The PatchTable lists exactly the fixture rows meeting the extent, with their ids, dates and embeddings."""
    assert isinstance(table, PatchTable)
    wanted = [r for r in rows if _meets(_bounds(r), extent)]
    assert len(table) == len(wanted) and len(wanted) < len(rows), (len(table), len(wanted), len(rows))
    assert table.embeddings.shape == (len(wanted), dims) and table.embeddings.dtype == np.float32
    by_key = {key(r): r for r in wanted}
    assert len(by_key) == len(wanted)
    got = set()
    for geometry, ident, date, vector in zip(table.geometries, table.ids, table.dates, table.embeddings):
        fixture_row = by_key.get((ident, date))
        assert fixture_row is not None, f"unexpected patch {ident} {date}"
        np.testing.assert_array_equal(vector, fixture_row["embedding"])
        assert bytes(geometry) == polygon_wkb(fixture_row["ring"])
        got.add((ident, date))
    assert got == set(by_key)


def _grid_checks(loaded, epsg, cell, dims, tolerance=0.0):
    c, a, b, f, d, e = loaded.geotransform
    assert loaded.epsg == epsg
    assert (b, d) == (0.0, 0.0) and a == -e
    assert abs(a - cell) <= tolerance, f"cell {a}, expected {cell}"
    assert loaded.count == dims and loaded.types == {"Float32"} and set(loaded.nodata) == {NODATA}


@pytest.fixture(scope="module")
def clay(products):
    return products["clay"]


@pytest.fixture(scope="module")
def ei(products):
    return products["earth-index"]


@pytest.fixture(scope="module")
def mt(products):
    return products["major-tom"]


# --- Clay --------------------------------------------------------------------------------------------------------


def _v0_key(chip):
    return str(chip["index"]), chip["date"].isoformat()


def test_clay_v0_later_date_wins(clay, tmp_path):
    chips = clay["files"]["v0"]["chips"]
    extent = (7.14, 44.55, 7.30, 44.67)  # all 3 x 3 chips
    loaded = load(tmp_path, "v0.tif", source=str(clay["files"]["v0"]["path"]), extent=extent)
    assert loaded.result.product == "clay"
    centre = ((extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2)
    _grid_checks(loaded, utm_epsg(*centre), 5120.0, 768)
    seen = check_raster(loaded, chips, clay_fx.expected_at, 250, _meets_extent(extent))
    later = [c for c in chips if c["date"] == clay_fx.V0_DATES[1]]
    assert len(later) == 2
    for chip in later:  # the pixel holding a repeated chip's centre shows the 2023 vector
        earlier = next(c for c in chips if c["index"] == chip["index"] and c is not chip)
        vector = loaded.at_lonlat(*chip["centre"])
        np.testing.assert_array_equal(vector, chip["embedding"])
        assert not np.array_equal(vector, earlier["embedding"])
        assert id(chip["embedding"]) in seen
    assert sum(v for k, v in seen.items() if k != "nodata") >= 8
    assert loaded.metadata["GEOEMBED_PRODUCT"] == "clay" and loaded.metadata["GEOEMBED_YEAR"] == "2023"


def test_clay_v0_patch_table_lists_only_the_extent(clay, tmp_path):
    chips = clay["files"]["v0"]["chips"]
    by_place = {(c["index"] // clay_fx.V0_CHIPS_PER_ROW, c["index"] % clay_fx.V0_CHIPS_PER_ROW): c for c in chips}
    first = chips.index(by_place[(10, 11)])
    last = chips.index(by_place[(11, 12)])
    extent = _between_centres(chips, first, last)  # rows 10-11, cols 11-12 (and the 2023 repeats among them)
    loaded = load(tmp_path, "v0-part.tif", product="clay", source=str(clay["files"]["v0"]["path"]), extent=extent)
    table = loaded.result.patches
    check_table(table, chips, extent, _v0_key, 768)
    assert len(table) == 6
    check_raster(loaded, chips, clay_fx.expected_at, 250, _meets_extent(extent))


def test_clay_naip_without_geo_metadata(clay, tmp_path):
    chips = clay["files"]["naip"]["chips"]
    extent = _between_centres(chips, 0, 8)  # NW chip centre to SE chip centre: all nine chips
    loaded = load(tmp_path, "naip.tif", source=str(clay["files"]["naip"]["path"]), extent=extent)
    assert loaded.result.product == "clay"
    assert any("lon/lat" in message and clay_fx.NAIP_NAME in message for message in loaded.log.warnings), loaded.log.warnings
    _grid_checks(loaded, 32618, 153.6, 1024, tolerance=0.5)
    seen = check_raster(loaded, chips, clay_fx.expected_at, 8, _meets_extent(extent))
    assert len([k for k in seen if k != "nodata"]) == 9, "every NAIP chip shows up"
    table = loaded.result.patches
    assert len(table) == 9 and table.dates == [None] * 9
    for chip in chips:
        index = next(i for i, g in enumerate(table.geometries) if bytes(g) == polygon_wkb(chip["ring"]))
        np.testing.assert_array_equal(table.embeddings[index], chip["embedding"])


def test_clay_s2(clay, tmp_path):
    chips = clay["files"]["s2"]["chips"]
    extent = _between_centres(chips, 0, 8)
    loaded = load(tmp_path, "s2.tif", product="clay", source=str(clay["files"]["s2"]["path"].parent), extent=extent)
    _grid_checks(loaded, 32737, 2560.0, 1024)
    seen = check_raster(loaded, chips, clay_fx.expected_at, 130, _meets_extent(extent))
    assert len([k for k in seen if k != "nodata"]) == 9
    table = loaded.result.patches
    assert sorted(table.ids) == sorted(c["chips_id"] for c in chips)
    assert {dt.datetime.fromisoformat(d) for d in table.dates} == {clay_fx.S2_DATETIME}
    for ident, vector in zip(table.ids, table.embeddings):
        np.testing.assert_array_equal(vector, next(c for c in chips if c["chips_id"] == ident)["embedding"])
    assert loaded.metadata["GEOEMBED_YEAR"] == "2023"


# --- Earth Index -------------------------------------------------------------------------------------------------


def _ei_rows(ei):
    return ei["files"]["polygons"]["rows"] + ei["files"]["two_row_groups"]["rows"]


@pytest.mark.parametrize("layout", ["polygons", "points"])
def test_earth_index_across_two_files(ei, tmp_path, layout):
    rows = _ei_rows(ei)
    source = ei["dataset_dir"] if layout == "polygons" else ei["points_dir"]
    twm = ei["files"]["polygons"]["rows"]
    txm = ei["files"]["two_row_groups"]["rows"]
    extent = (twm[7]["centre"][0], twm[28]["centre"][1], txm[4]["centre"][0], txm[7]["centre"][1])
    loaded = load(tmp_path, f"ei-{layout}.tif", source=str(source), extent=extent)
    assert loaded.result.product == "earth-index"
    _grid_checks(loaded, 32633, 320.0, 384)
    points = layout == "points"  # the points folder holds only 33TWM; a point meets the extent when it lies inside it
    every = twm if points else rows
    meets = _meets_extent(extent, points=points)
    subset = [r for r in every if meets(r)]
    seen = check_raster(loaded, every, ei_fx.expected_at, 16, meets)
    shown = [k for k in seen if k != "nodata"]
    if points:  # a point becomes the output cell around it: every point in the extent shows
        assert len(shown) == len(subset) >= 8, (len(shown), len(subset))
    else:
        assert len(shown) >= 30, len(shown)
    table = loaded.result.patches
    assert set(table.dates) == {"2024-01-01"}
    wanted = {r["id"] for r in subset}
    assert set(table.ids) == wanted and len(table.ids) == len(wanted)
    for ident, vector in zip(table.ids, table.embeddings):
        np.testing.assert_array_equal(vector, next(r for r in rows if r["id"] == ident)["embedding"])
    notes = loaded.metadata.get("GEOEMBED_NOTES", "")
    assert "2024-01-01" in notes and "CC-BY-4.0" in notes


def test_earth_index_patch_table_polygons(ei, tmp_path):
    rows = ei["files"]["polygons"]["rows"]
    extent = _between_centres(rows, 8, 15)  # rows 1-2, cols 2-3 of 33TWM
    loaded = load(tmp_path, "ei-part.tif", product="earth-index", source=str(ei["files"]["polygons"]["path"]), extent=extent)
    check_table(loaded.result.patches, rows, extent, lambda r: (r["id"], "2024-01-01"), 384)
    assert len(loaded.result.patches) == 4


def test_earth_index_explicit_crs_and_resolution(ei, tmp_path):
    rows = ei["files"]["polygons"]["rows"]
    extent = _between_centres(rows, 0, 35)
    for crs, resolution, cell, tolerance in (("EPSG:32634", None, 320.0, 3.0), ("EPSG:32633", 100.0, 100.0, 0.0)):
        loaded = load(
            tmp_path,
            f"ei-{crs[5:]}.tif",
            product="earth-index",
            source=str(ei["files"]["polygons"]["path"]),
            extent=extent,
            crs=crs,
            resolution=resolution,
        )
        _grid_checks(loaded, int(crs[5:]), cell, 384, tolerance=tolerance)
        seen = check_raster(loaded, rows, ei_fx.expected_at, max(16, cell / 20), _meets_extent(extent))
        assert len([k for k in seen if k != "nodata"]) >= 25


def _north_east_extent(ei):
    """A box around the two north-east patches of 33TXM (row 0, columns 4-5): inside the north row group, and more
    than two patches (640 m) away from both the south row group and the neighbouring file 33TWM, so the test holds
    even for a loader that reads a margin of patches around the extent."""
    rows = ei["files"]["two_row_groups"]["rows"]
    (west, lat0), (east, lat1) = rows[4]["centre"], rows[5]["centre"]
    extent = (west - 0.0005, min(lat0, lat1) - 0.0005, east + 0.0005, max(lat0, lat1) + 0.0005)
    north, south = ei["files"]["two_row_groups"]["row_group_bounds"]
    twm_east = max(r["bounds"][2] for r in ei["files"]["polygons"]["rows"])
    assert extent[1] - south[3] > 0.006 and extent[0] - twm_east > 0.009  # > 640 m in latitude and longitude
    assert _meets(north, extent) and not _meets(south, extent)
    return extent


def test_earth_index_row_group_skipping(ei, tmp_path, monkeypatch):
    calls = spy_parquet_reads(monkeypatch)
    extent = _north_east_extent(ei)
    path = ei["files"]["two_row_groups"]["path"]
    loaded = load(tmp_path, "north.tif", product="earth-index", source=str(path), extent=extent)
    name = path.name
    embedding_reads = [c for c in calls if c[0] == name and (c[3] is None or "embedding" in c[3])]
    assert embedding_reads, calls
    assert all(c[1] == "read_row_group" and c[2] == 0 for c in embedding_reads), f"the south row group was read: {calls}"
    north_rows = ei["files"]["two_row_groups"]["rows"][:18]
    assert len(loaded.result.patches) == len([r for r in north_rows if _meets(r["bounds"], extent)]) > 0


def test_file_outside_the_extent_is_not_read(ei, tmp_path, monkeypatch):
    calls = spy_parquet_reads(monkeypatch)
    extent = _north_east_extent(ei)
    loaded = load(tmp_path, "north2.tif", product="earth-index", source=str(ei["dataset_dir"]), extent=extent)
    assert [os.path.basename(s) for s in loaded.result.provenance.sources] == [ei["files"]["two_row_groups"]["path"].name]
    other = ei["files"]["polygons"]["path"].name
    assert [c for c in calls if c[0] == other] == [], "33TWM's bbox is outside the extent: only its metadata may be read"
    assert any(c[0] == ei["files"]["two_row_groups"]["path"].name for c in calls)


# --- Major TOM ---------------------------------------------------------------------------------------------------


def _mt_key(row):
    return row["unique_id"], f"{row['timestamp']:%Y-%m-%dT%H:%M:%S}"


def test_major_tom_dinov2_latest_then_nearest(mt, tmp_path):
    rows = mt["datasets"]["dinov2"]["rows"]
    extent = (14.13, 40.79, 14.33, 40.855)  # both cells; cell 454U_119R has 2021 and 2022 fragments
    loaded = load(tmp_path, "dino.tif", source=str(mt["datasets"]["dinov2"]["dir"]), extent=extent)
    assert loaded.result.product == "major-tom"
    _grid_checks(loaded, 32633, 2240.0, 768)
    subset = [r for r in rows if _meets(_bounds(r), extent)]
    seen = check_raster(loaded, rows, mt_fx.expected_at, 100, _meets_extent(extent))
    shown = [r for r in subset if id(r["embedding"]) in seen]
    assert {(r["grid_cell"], r["timestamp"].year) for r in shown} == {("454U_119R", 2022), ("454U_120R", 2021)}
    assert len(shown) >= 15
    assert loaded.metadata["GEOEMBED_YEAR"] == "2022"
    # at the centre of every 2021 fragment of cell 454U_119R the 2022 fragment wins
    for row in (r for r in subset if r["grid_cell"] == "454U_119R" and r["timestamp"].year == 2021):
        vector = loaded.at_lonlat(*row["centre"])
        if vector is not None and not np.all(vector == NODATA):
            assert not np.array_equal(vector, row["embedding"]), "an older fragment beat a newer one"


def test_major_tom_patch_table(mt, tmp_path):
    rows = mt["files"]["dinov2_part1"]["rows"]
    extent = _between_centres(rows, 0, 6)  # first two fragment rows/columns of cell 454U_119R
    loaded = load(tmp_path, "dino-part.tif", product="major-tom", source=str(mt["files"]["dinov2_part1"]["path"]), extent=extent)
    check_table(loaded.result.patches, rows, extent, _mt_key, 768)


@pytest.mark.parametrize(("model", "dims", "cell"), [("ssl4eo", 2048, 2240.0), ("siglip", 1152, 3840.0)])
def test_major_tom_other_models(mt, tmp_path, model, dims, cell):
    rows = mt["datasets"][model]["rows"]
    extent = (14.13, 40.795, 14.21, 40.853)
    loaded = load(tmp_path, f"{model}.tif", product="major-tom", source=str(mt["datasets"][model]["dir"]), extent=extent)
    _grid_checks(loaded, 32633, cell, dims)
    seen = check_raster(loaded, rows, mt_fx.expected_at, 30, _meets_extent(extent))
    assert len([k for k in seen if k != "nodata"]) >= (2 if model == "siglip" else 10)
    table = loaded.result.patches
    assert all(d.startswith("2021-06-01T10:10:31") for d in table.dates), table.dates[:3]
    assert set(table.ids) == {r["unique_id"] for r in rows if _meets(_bounds(r), extent)}


def test_patch_output_without_extent_covers_all_patches(ei, tmp_path):
    rows = ei["files"]["polygons"]["rows"]
    loaded = load(tmp_path, "all.tif", product="earth-index", source=str(ei["files"]["polygons"]["path"]))
    assert len(loaded.result.patches) == 36
    seen = check_raster(loaded, rows, ei_fx.expected_at, 16)
    assert len([k for k in seen if k != "nodata"]) == 36


def test_clay_variant_is_named_from_the_files_read(clay, tmp_path):
    """A folder of Clay variants with an extent over the v1.5 Sentinel-2 chips: the output must not be called NAIP."""
    chips = clay["files"]["s2"]["chips"]
    root = clay["files"]["s2"]["path"].parent.parent  # naip/, s2/ and v0/
    loaded = load(tmp_path, "s2-in-root.tif", product="clay", source=str(root), extent=_between_centres(chips, 0, 8))
    assert [os.path.basename(s) for s in loaded.result.provenance.sources] == [clay_fx.S2_NAME]
    name = loaded.metadata["GEOEMBED_PRODUCT_NAME"]
    assert "Sentinel-2" in name.split(":")[-1] and "NAIP" not in name.split(":")[-1], name
