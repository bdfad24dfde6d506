"""SOURCE kinds, PRODUCT=auto, one-line errors without leftovers, a full load checked with GDAL, and cancel."""

import json
import math
import os
import shutil

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.load import LoadRequest, detect_product, run
from geoembed.loaders.products import aef
from geoembed.loaders.products.aef import classify_source
from tests.fixtures.aef import PATCH_DEG
from tests.fixtures.rasters import write_not_aef_tiff
from tests.unit.helpers import (
    QuietLog,
    assert_one_line,
    dequant_formula,
    expected_at,
    find_spec,
    leftovers,
    partial_files,
    raw_codes,
    tile_path,
    to_crs,
)

EXTENT = (5.98, 44.995, 6.01, 45.005)  # across 6°E: the 2024 31N (south) and 32N tiles


@pytest.fixture
def annual(aef_mirror):
    return aef_mirror / "v1" / "annual"


@pytest.fixture(scope="module")
def tile_folder(aef_mirror, tmp_path_factory):
    """A folder of AEF tiles without an index: a copy of 2024/31N."""
    root = tmp_path_factory.mktemp("tiles-only")
    shutil.copytree(aef_mirror / "v1" / "annual" / "2024" / "31N", root / "2024" / "31N")
    return root


@pytest.fixture(scope="module")
def not_aef(tmp_path_factory):
    """A 3-band Float32 GeoTIFF (a plain image, not AEF)."""
    path = write_not_aef_tiff(tmp_path_factory.mktemp("not-aef") / "image.tif", size=8, west=500000.0, north=5000000.0)
    return path


# --- classify_source / detect_product ----------------------------------------------------------


def _detect(source):
    return detect_product(source)


def test_mirror_root_v1_and_annual_folders_are_indexes(aef_mirror, annual):
    for folder in (aef_mirror, aef_mirror / "v1", annual):
        kind, value = classify_source(str(folder))
        assert kind == "index"
        assert os.path.samefile(value, annual / "aef_index.parquet")
        assert _detect(str(folder))[0] == "aef"


def test_index_file(annual):
    assert classify_source(str(annual / "aef_index.parquet")) == ("index", str(annual / "aef_index.parquet"))
    assert _detect(str(annual / "aef_index.parquet"))[0] == "aef"


def test_single_tile(aef_mirror, aef_specs):
    path = str(tile_path(aef_mirror, find_spec(aef_specs, 2024, "32N")))
    assert classify_source(path) == ("tile", path)
    product, reason = _detect(path)
    assert product == "aef" and reason


def test_folder_of_tiles_without_index(tile_folder):
    kind, value = classify_source(str(tile_folder))
    assert kind == "tiles"
    names = sorted(os.path.relpath(p, tile_folder) for p in value)
    assert names == sorted(os.path.join("2024", "31N", n) for n in os.listdir(tile_folder / "2024" / "31N"))
    assert len(value) == 2
    assert _detect(str(tile_folder))[0] == "aef"


def test_folder_without_tiles(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(GeoEmbedError) as info:
        classify_source(str(tmp_path))
    assert_one_line(info.value)


def test_non_existent_path(tmp_path):
    with pytest.raises(GeoEmbedError) as info:
        classify_source(str(tmp_path / "missing-folder"))
    assert "missing-folder" in assert_one_line(info.value)
    with pytest.raises(GeoEmbedError) as info:
        _detect(str(tmp_path / "missing-folder"))
    assert_one_line(info.value)


def test_csv_index_gets_a_parquet_hint(annual):
    with pytest.raises(GeoEmbedError) as info:
        classify_source(str(annual / "aef_index.csv"))
    assert "aef_index.parquet" in assert_one_line(info.value)


def test_non_aef_geotiff_is_read_as_a_generic_embedding_raster(not_aef):
    """Three Float32 bands are not AlphaEarth, but they are an embedding raster of someone's model."""
    product_id, reason = _detect(str(not_aef))
    assert product_id == "generic" and "3 Float32 bands" in reason, reason


# --- errors through run() ----------------------------------------------------------------------


def _run_error(request, out_folder):
    """run() must raise a one-line GeoEmbedError and leave the output folder empty."""
    with pytest.raises(GeoEmbedError) as info:
        run(request, log=QuietLog())
    message = assert_one_line(info.value)
    if os.path.isdir(out_folder):
        assert leftovers(out_folder) == [], "an error left files behind"
    return message


def test_non_aef_geotiff_is_refused_as_aef(not_aef, tmp_path):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), product="aef", source=str(not_aef)), out)
    assert "64 signed 8-bit bands" in message


def test_non_aef_geotiff_named_like_a_tile_explains_the_bands(not_aef, tmp_path):
    """PRODUCT=auto trusts an AEF-like name; opening the file must then say what is wrong with it."""
    named = tmp_path / "2024" / "31N" / "x0123456789abcdef-0000000000-0000000000.tiff"
    named.parent.mkdir(parents=True)
    shutil.copy(not_aef, named)
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), source=str(named)), out)
    assert "64 signed 8-bit bands" in message and "3" in message


def test_non_existent_source(tmp_path):
    out = tmp_path / "out"
    for missing in ("missing-folder", "missing.tiff", "missing.parquet"):
        for product in ("auto", "aef"):
            source = str(tmp_path / missing)
            message = _run_error(LoadRequest(output=str(out / "e.tif"), product=product, source=source, extent=EXTENT), out)
            assert missing in message


def test_extent_without_tiles(aef_mirror, tmp_path):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), source=str(aef_mirror), extent=(-40.0, 10.0, -39.9, 10.1)), out)
    assert "EXTENT" in message
    # a folder of tiles (here: the 56S tile) with an extent elsewhere
    message = _run_error(
        LoadRequest(output=str(out / "e.tif"), source=str(aef_mirror / "v1" / "annual" / "2024" / "56S"), extent=EXTENT), out
    )
    assert "No AEF tile covers" in message


def test_year_not_in_index(aef_mirror, tmp_path):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), source=str(aef_mirror), extent=EXTENT, year=2019), out)
    assert "2019" in message and "2023" in message and "2024" in message


def test_index_without_extent(aef_mirror, tmp_path):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), source=str(aef_mirror)), out)
    assert "EXTENT" in message


def test_csv_index_source(annual, tmp_path):
    out = tmp_path / "out"
    for product in ("auto", "aef"):
        request = LoadRequest(output=str(out / "e.tif"), product=product, source=str(annual / "aef_index.csv"), extent=EXTENT)
        message = _run_error(request, out)
        if product == "aef":
            assert "parquet" in message


@pytest.mark.parametrize("name", ["out.png", "out.vrt", "out", "out.tif.partial"])
def test_output_must_be_a_geotiff(aef_mirror, tmp_path, name):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / name), source=str(aef_mirror), extent=EXTENT, year=2024), out)
    assert "OUTPUT" in message


def test_unknown_product(aef_mirror, tmp_path):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), product="nope", source=str(aef_mirror), extent=EXTENT), out)
    assert "aef" in message


def test_non_positive_resolution(aef_mirror, tmp_path):
    out = tmp_path / "out"
    request = LoadRequest(output=str(out / "e.tif"), source=str(aef_mirror), extent=EXTENT, year=2024, resolution=-10.0)
    assert "RESOLUTION" in _run_error(request, out)


def test_year_not_in_tile_folder(tile_folder, tmp_path):
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), source=str(tile_folder), year=2023), out)
    assert "2023" in message and "2024" in message


# --- a full load -------------------------------------------------------------------------------


def _read(path):
    dataset = gdal.Open(str(path))
    assert dataset is not None
    return dataset


def _epsg(dataset):
    srs = dataset.GetSpatialRef().Clone()
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


@pytest.fixture(scope="module")
def loaded(aef_mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("load") / "aef.tif"
    log = QuietLog()
    result = run(LoadRequest(output=str(out), source=str(aef_mirror), extent=EXTENT, year=2024), log=log)
    return result, out, log


def test_full_load_writes_a_north_up_float32_geotiff(loaded):
    result, out, _ = loaded
    assert result.output == str(out) and result.product == "aef"
    dataset = _read(out)
    c, a, b, f, d, e = dataset.GetGeoTransform()
    assert (b, d) == (0.0, 0.0) and a == 10.0 and e == -10.0  # north-up, 10 m
    assert _epsg(dataset) == 32631  # UTM zone of the extent's centre (5.995°E)
    assert c % 10 == 0 and f % 10 == 0  # snapped to the 10 m lattice
    assert dataset.RasterCount == 64
    names = [dataset.GetRasterBand(i + 1).GetDescription() for i in range(64)]
    assert names == [f"A{i:02d}" for i in range(64)]
    for i in range(64):
        band = dataset.GetRasterBand(i + 1)
        assert gdal.GetDataTypeName(band.DataType) == "Float32"
        assert band.GetNoDataValue() == -9999.0
    # the grid covers the extent
    west, south = to_crs(32631, EXTENT[0], EXTENT[1])
    east, north = to_crs(32631, EXTENT[2], EXTENT[3])
    assert c <= min(west, to_crs(32631, EXTENT[0], EXTENT[3])[0]) and f >= north
    assert c + a * dataset.RasterXSize >= east and f + e * dataset.RasterYSize <= south


def test_full_load_metadata(loaded, aef_mirror, aef_specs):
    _, out, _ = loaded
    meta = _read(out).GetMetadata()
    assert meta["GEOEMBED_PRODUCT"] == "aef"
    assert meta["GEOEMBED_YEAR"] == "2024"
    assert "127.5" in meta["GEOEMBED_DEQUANTIZATION"] and "-128" in meta["GEOEMBED_DEQUANTIZATION"]
    sources = json.loads(meta["GEOEMBED_SOURCES"])
    assert isinstance(sources, list)
    expected = {tile_path(aef_mirror, find_spec(aef_specs, 2024, zone)) for zone in ("31N", "32N")}
    assert {os.path.realpath(s) for s in sources} == {os.path.realpath(p) for p in expected}


def test_full_load_values_at_patch_centres(loaded, aef_specs):
    _, out, _ = loaded
    dataset = _read(out)
    c, a, _, f, _, e = dataset.GetGeoTransform()
    values = dataset.ReadAsArray()
    checked = {"west": 0, "east": 0}
    spec31 = find_spec(aef_specs, 2024, "31N")
    for i in range(math.floor(EXTENT[0] / PATCH_DEG) + 1, math.floor(EXTENT[2] / PATCH_DEG)):
        for j in range(math.floor(EXTENT[1] / PATCH_DEG) + 1, math.floor(EXTENT[3] / PATCH_DEG)):
            lon, lat = (i + 0.5) * PATCH_DEG, (j + 0.5) * PATCH_DEG
            x31, y31 = to_crs(32631, lon, lat)
            col31 = math.floor((x31 - spec31.west) / 10)
            row31 = math.floor((spec31.south + 10 * spec31.height - y31) / 10)
            if any(r0 <= row31 < r1 and c0 <= col31 < c1 for r0, r1, c0, c1 in spec31.nodata_boxes):
                continue  # the 32N tile does not reach this far west
            col, row = math.floor((x31 - c) / a), math.floor((y31 - f) / e)
            np.testing.assert_allclose(values[:, row, col], expected_at(lon, lat, 2024), atol=1e-6, err_msg=f"{lon}, {lat}")
            checked["west" if lon < 6 else "east"] += 1
    assert checked["west"] >= 10 and checked["east"] >= 10, checked


def test_full_load_leaves_only_the_output(loaded):
    _, out, _ = loaded
    assert leftovers(out.parent) == ["aef.tif"]


def test_single_tile_load_is_the_flipped_tile(aef_mirror, aef_specs, tmp_path):
    spec = find_spec(aef_specs, 2024, "31N")
    path = tile_path(aef_mirror, spec)
    out = tmp_path / "tile.tif"
    run(LoadRequest(output=str(out), source=str(path)), log=QuietLog())
    dataset = _read(out)
    assert dataset.GetGeoTransform() == (spec.west, 10.0, 0.0, spec.south + 10 * spec.height, 0.0, -10.0)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (spec.width, spec.height)
    assert _epsg(dataset) == spec.epsg
    values = dataset.ReadAsArray()
    flipped = raw_codes(path)[:, ::-1, :]
    nodata = (flipped == -128).any(axis=0)
    assert (values[:, nodata] == -9999.0).all()
    np.testing.assert_allclose(values[:, ~nodata], dequant_formula(flipped)[:, ~nodata], rtol=1e-6)
    assert partial_files(tmp_path) == []


def test_tile_folder_load_mosaics_both_tiles(tile_folder, aef_specs, tmp_path):
    out = tmp_path / "folder.tif"
    result = run(LoadRequest(output=str(out), source=str(tile_folder)), log=QuietLog())
    south = find_spec(aef_specs, 2024, "31N")
    north = find_spec(aef_specs, 2024, "31N", yoff=8192)
    dataset = _read(out)
    assert dataset.GetGeoTransform() == (south.west, 10.0, 0.0, north.south + 10 * north.height, 0.0, -10.0)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (320, south.height + north.height)
    assert result.provenance.year == 2024
    assert len(result.provenance.sources) == 2


def test_plan_aef_picks_tiles_of_the_year(aef_mirror):
    request = LoadRequest(output="unused.tif", source=str(aef_mirror), extent=(5.98, 44.995, 5.99, 45.0), year=2023)
    plan = aef.plan(request, QuietLog())
    try:
        assert [os.path.basename(os.path.dirname(os.path.dirname(t.location))) for t in plan.tiles] == ["2023"]
        assert plan.provenance.year == 2023
    finally:
        plan.close()


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_after_the_first_block(aef_mirror, tmp_path):
    progress = []

    def is_cancelled():  # once the first block is written
        return len(progress) >= 1

    out = tmp_path / "out" / "cancelled.tif"
    # 4 m pixels: the extent is more than 512 pixels wide, so there are several blocks
    request = LoadRequest(output=str(out), source=str(aef_mirror), extent=EXTENT, year=2024, resolution=4.0)
    with pytest.raises(Cancelled) as info:
        run(request, log=QuietLog(), progress=progress.append, is_cancelled=is_cancelled)
    assert isinstance(info.value, GeoEmbedError)
    assert_one_line(info.value)
    assert len(progress) == 1 and progress[0] < 1.0
    assert not out.exists()
    assert leftovers(out.parent) == []


def test_extent_in_the_output_crs_is_kept_exactly(aef_mirror, aef_specs, tmp_path):
    spec = find_spec(aef_specs, 2024, "31N")
    extent = (spec.west + 1000, spec.south + 100, spec.west + 2000, spec.south + 600)  # 10 m multiples
    out = tmp_path / "utm.tif"
    request = LoadRequest(output=str(out), source=str(aef_mirror), extent=extent, extent_crs="EPSG:32631", year=2024)
    result = run(request, log=QuietLog())
    assert result.grid.crs == "EPSG:32631"
    dataset = _read(out)
    assert dataset.GetGeoTransform() == (extent[0], 10.0, 0.0, extent[3], 0.0, -10.0)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (100, 50)
    flipped = raw_codes(tile_path(aef_mirror, spec))[:, ::-1, :]
    rows = slice(spec.height - 60, spec.height - 10)  # 600 m .. 100 m north of the south edge
    np.testing.assert_allclose(dataset.ReadAsArray(), dequant_formula(flipped[:, rows, 100:200]), rtol=1e-6)


def test_geographic_output_crs(aef_mirror, tmp_path):
    extent = (5.985, 44.996, 6.005, 45.004)
    out = tmp_path / "lonlat.tif"
    run(LoadRequest(output=str(out), source=str(aef_mirror), extent=extent, year=2024, crs="EPSG:4326"), log=QuietLog())
    dataset = _read(out)
    c, a, b, f, d, e = dataset.GetGeoTransform()
    assert _epsg(dataset) == 4326
    assert (b, d) == (0.0, 0.0) and e < 0
    assert a == pytest.approx(10 / 111_320) and -e == pytest.approx(10 / 111_320)
    values = dataset.ReadAsArray()
    checked = 0
    for i in range(math.floor(extent[0] / PATCH_DEG) + 1, math.floor(extent[2] / PATCH_DEG)):
        for j in range(math.floor(extent[1] / PATCH_DEG) + 1, math.floor(extent[3] / PATCH_DEG)):
            lon, lat = (i + 0.5) * PATCH_DEG, (j + 0.5) * PATCH_DEG
            col, row = math.floor((lon - c) / a), math.floor((lat - f) / e)
            np.testing.assert_allclose(values[:, row, col], expected_at(lon, lat, 2024), atol=1e-6, err_msg=f"{lon}, {lat}")
            checked += 1
    assert checked >= 20


def test_tiles_missing_from_the_mirror(aef_mirror, aef_specs, tmp_path):
    mirror = tmp_path / "partial-mirror"
    annual = mirror / "v1" / "annual"
    annual.mkdir(parents=True)
    shutil.copy(aef_mirror / "v1" / "annual" / "aef_index.parquet", annual)
    out = tmp_path / "out"
    message = _run_error(LoadRequest(output=str(out / "e.tif"), source=str(mirror), extent=EXTENT, year=2024), out)
    assert "mirror" in message
    # with one of the two tiles present: a warning names the missing one, its area stays nodata
    spec31, spec32 = find_spec(aef_specs, 2024, "31N"), find_spec(aef_specs, 2024, "32N")
    (annual / spec31.relative_path).parent.mkdir(parents=True)
    shutil.copy(tile_path(aef_mirror, spec31), annual / spec31.relative_path)
    log = QuietLog()
    result = run(LoadRequest(output=str(out / "some.tif"), source=str(mirror), extent=EXTENT, year=2024), log=log)
    assert len(log.warnings) == 1 and spec32.relative_path in log.warnings[0]
    assert [os.path.basename(s) for s in result.provenance.sources] == [spec31.name]


def test_written_file_reads_back_as_an_embedding_raster(loaded):
    from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff
    from geoembed.loaders.raster.grid import Window

    result, out, _ = loaded
    raster = EmbeddingTiff(str(out))
    try:
        assert raster.grid == result.grid
        assert raster.band_names == tuple(f"A{i:02d}" for i in range(64))
        assert raster.provenance.product == "aef" and raster.provenance.year == 2024
        assert raster.provenance.sources == result.provenance.sources
        block = raster.read(Window(0, 0, raster.grid.width, raster.grid.height))
        values = _read(out).ReadAsArray()
        np.testing.assert_array_equal(block.valid, ~(values == -9999.0).any(axis=0))
        assert block.valid.mean() > 0.5
    finally:
        raster.close()


# --- the reason for a missing or unreachable file must reach the user -------------------------

MISSING_WORDS = ("No such file", "does not exist", "not found", "Not found", "404")


def test_open_tile_says_a_local_file_is_missing(tmp_path):
    from geoembed.loaders.products.aef import open_tile

    with pytest.raises(GeoEmbedError) as info:
        open_tile(str(tmp_path / "x0123456789abcdef-0000000000-0000000000.tiff"))
    message = assert_one_line(info.value)
    assert any(word in message for word in MISSING_WORDS), message


def test_open_tile_says_a_remote_file_is_missing(aef_mirror):
    from geoembed.loaders.products.aef import open_tile
    from tests.support.range_server import RangeServer

    with RangeServer(aef_mirror) as server, pytest.raises(GeoEmbedError) as info:
        open_tile(server.url + "/v1/annual/2024/31N/x0123456789abcdef-0000000000-0000000000.tiff")
    message = assert_one_line(info.value)
    assert any(word in message for word in MISSING_WORDS), message


@pytest.mark.parametrize("name", ["missing.tiff", "x0123456789abcdef-0000000000-0000000000.tiff", "aef_index.parquet"])
@pytest.mark.parametrize("product", ["aef", "auto"])
def test_missing_source_file_is_named_as_missing(tmp_path, name, product):
    """PRODUCT=auto (the default) must not turn 'this file does not exist' into 'cannot recognise'."""
    out = tmp_path / "out"
    source = tmp_path / "no" / "such" / name
    message = _run_error(LoadRequest(output=str(out / "e.tif"), product=product, source=str(source), extent=EXTENT), out)
    assert any(word in message for word in MISSING_WORDS), message


def test_folder_without_year_uses_the_latest_year_that_covers_the_extent(aef_mirror, aef_specs, tmp_path):
    """As with an index: YEAR empty means the latest year *with tiles here*, not the latest year anywhere in the folder."""
    folder = tmp_path / "mixed-years"
    old, new = find_spec(aef_specs, 2023, "31N"), find_spec(aef_specs, 2024, "32N")
    for spec in (old, new):
        (folder / spec.relative_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tile_path(aef_mirror, spec), folder / spec.relative_path)
    extent = (5.977, 44.99, 5.984, 44.994)  # only the 2023 31N tile is here (the 32N tile starts near 5.987°E)
    # the data is there: with YEAR=2023 the load works
    explicit = run(
        LoadRequest(output=str(tmp_path / "out" / "explicit.tif"), source=str(folder), extent=extent, year=2023), log=QuietLog()
    )
    assert [os.path.basename(s) for s in explicit.provenance.sources] == [old.name]
    out = tmp_path / "out" / "old.tif"
    result = run(LoadRequest(output=str(out), source=str(folder), extent=extent), log=QuietLog())
    assert result.provenance.year == 2023
    assert [os.path.basename(s) for s in result.provenance.sources] == [old.name]


def test_read_error_midway_leaves_no_output(aef_mirror, aef_specs, tmp_path):
    """A tile whose eastern internal blocks are corrupt: the first output block is written, then a read fails."""
    from tests.support.tiff_tags import first_ifd_tags

    spec = find_spec(aef_specs, 2024, "31N")
    bad = tmp_path / "bad" / spec.relative_path
    bad.parent.mkdir(parents=True)
    shutil.copy(tile_path(aef_mirror, spec), bad)
    tags = first_ifd_tags(bad)
    block_cols = math.ceil(spec.width / tags[322][0])
    block_rows = math.ceil(spec.height / tags[323][0])
    with open(bad, "r+b") as handle:
        for band in range(64):
            for row in range(block_rows):
                index = (band * block_rows + row) * block_cols + block_cols - 1  # the easternmost block column
                handle.seek(tags[324][index])
                handle.write(b"\xff" * tags[325][index])
    progress = []
    out = tmp_path / "out"
    # 4 m pixels: 800 x 640, so 2 x 2 blocks of 512; the western blocks never touch the last 64 source columns, and a
    # mosaic is written two block rows at a time, column by column (writer.in_row_pairs): both western blocks first
    request = LoadRequest(output=str(out / "bad.tif"), source=str(bad), resolution=4.0)
    with pytest.raises(GeoEmbedError) as info:
        run(request, log=QuietLog(), progress=progress.append)
    assert spec.name in assert_one_line(info.value)
    assert len(progress) == 2  # the western blocks were written before the failure
    assert leftovers(out) == []


def test_folder_scan_reads_each_tile_once_when_vrt_siblings_exist(aef_mirror, tmp_path):
    """Source Cooperative ships a north-up .vrt next to every .tiff; the scan must not list a tile twice."""
    folder = tmp_path / "with-vrt"
    shutil.copytree(aef_mirror / "v1" / "annual" / "2024" / "31N", folder / "2024" / "31N")
    tiffs = sorted((folder / "2024" / "31N").glob("*.tiff"))
    for tiff in tiffs:
        gdal.Translate(str(tiff.with_suffix(".vrt")), str(tiff), format="VRT")
    lonely_vrt = folder / "2024" / "31N" / "x0000000000000000-0000000000-0000000000.vrt"
    gdal.Translate(str(lonely_vrt), str(tiffs[0]), format="VRT")
    kind, tiles = classify_source(str(folder))
    assert kind == "tiles"
    assert sorted(tiles) == sorted([str(t) for t in tiffs] + [str(lonely_vrt)])
