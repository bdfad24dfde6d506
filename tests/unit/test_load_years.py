"""geoembed:load with YEARS, without QGIS: the YEARS parser, and several years written on one shared grid.

The fixture mirror has 2023 (one 31N tile) and 2024 (31N, a 31N neighbour, 32N, 56S): expectations come from
single-year loads of each year and from the fixture's own values, never from the multi-year code itself.
"""

import os
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders import years as years_module
from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.load import LoadRequest, run
from geoembed.loaders.model import EmbeddingBlock, EmbeddingRaster, Provenance
from geoembed.loaders.raster.grid import Grid, Window
from geoembed.loaders.raster.mosaic import onto_grid
from geoembed.loaders.years import parse_years, run_years, year_path
from tests.fixtures.aef import patch_centre
from tests.fixtures.rasters import write_not_aef_tiff
from tests.unit.helpers import QuietLog, assert_one_line, expected_at, leftovers, to_crs

EXTENT = (5.976, 44.99, 6.03, 45.02)  # lon/lat across 6°E: the 2023 tile (31N) covers only its west part


# --- the YEARS parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024", [2024]),
        ("2019,2021,2024", [2019, 2021, 2024]),
        (" 2024 , 2019 ", [2019, 2024]),
        ("2018-2024", list(range(2018, 2025))),
        ("2018 - 2020,2024", [2018, 2019, 2020, 2024]),
        ("2019-2021,2020,2021", [2019, 2020, 2021]),
        ("2000-2029", list(range(2000, 2030))),
        ("2100", [2100]),
    ],
)
def test_parse_years(text, expected):
    assert parse_years(text) == expected


@pytest.mark.parametrize(
    "text, words",
    [
        ("", ["empty"]),
        ("  ,  ", ["empty"]),
        ("2019;2020", ["2019;2020", "e.g."]),
        ("twenty", ["twenty"]),
        ("2019,,2020", ["''"]),
        ("19", ["'19'"]),
        ("2019-", ["2019-"]),
        ("2019-2020-2021", ["2019-2020-2021"]),
        ("2024-2018", ["backwards", "2018-2024"]),
        ("1999", ["1999", "2000-2100"]),
        ("2099-2101", ["2101"]),
        ("2000-2030", ["more than 30"]),
        ("2000-2010,2020-2040", ["more than 30"]),
    ],
)
def test_parse_years_refuses_junk_in_one_line(text, words):
    with pytest.raises(GeoEmbedError) as info:
        parse_years(text)
    message = assert_one_line(info.value)
    assert message.startswith("YEARS")
    assert all(word in message for word in words), message


def test_year_path_is_beside_output():
    assert year_path("/x/aef.tif", 2019) == "/x/aef_2019.tif"
    assert year_path("/x/y.z/out.tiff", 2024) == "/x/y.z/out_2024.tiff"


# --- several years on one grid -----------------------------------------------------------------------


def read(path):
    dataset = gdal.Open(str(path))
    values = dataset.ReadAsArray()
    grid = (dataset.GetGeoTransform(), dataset.RasterXSize, dataset.RasterYSize, dataset.GetProjection())
    metadata = dataset.GetMetadata()
    dataset = None
    return values, grid, metadata


@pytest.fixture(scope="module")
def index(aef_mirror):
    return str(aef_mirror / "v1" / "annual" / "aef_index.parquet")


@pytest.fixture(scope="module")
def two_years(index, tmp_path_factory):
    """YEARS 2023,2024 from the index with an EXTENT: (results, log, folder)."""
    folder = tmp_path_factory.mktemp("years")
    log = QuietLog()
    request = LoadRequest(output=str(folder / "aef.tif"), source=index, extent=EXTENT)
    return run_years(request, [2023, 2024], log), log, folder


def test_one_file_per_year_on_one_grid_with_its_year(two_years):
    results, _, folder = two_years
    assert [r.output for r in results] == [str(folder / "aef_2023.tif"), str(folder / "aef_2024.tif")]
    assert sorted(os.listdir(folder)) == ["aef_2023.tif", "aef_2024.tif"]
    grids = []
    for result, year in zip(results, (2023, 2024)):
        values, grid, metadata = read(result.output)
        assert metadata["GEOEMBED_YEAR"] == str(year) and metadata["GEOEMBED_PRODUCT"] == "aef"
        assert values.shape[0] == 64
        grids.append(grid)
    assert grids[0] == grids[1]
    assert results[0].grid == results[1].grid


def test_each_year_equals_its_single_year_load(two_years, index, tmp_path):
    results, _, _ = two_years
    for result in results:
        year = result.provenance.year
        single = run(LoadRequest(output=str(tmp_path / f"one_{year}.tif"), source=index, extent=EXTENT, year=year), QuietLog())
        expected, expected_grid, _ = read(single.output)
        got, grid, _ = read(result.output)
        assert grid == expected_grid
        np.testing.assert_array_equal(got, expected)


def test_values_are_each_years_own_and_the_2023_gap_is_nodata(two_years):
    results, _, _ = two_years
    by_year = {r.provenance.year: read(r.output) for r in results}
    (gt, width, height, _) = by_year[2024][1]
    lon, lat = patch_centre(5.99, 45.005)  # in the 2023 tile (zone 31N, west of 6°E), outside its nodata box
    x, y = to_crs(32632, lon, lat)
    col, row = int((x - gt[0]) // gt[1]), int((y - gt[3]) // gt[5])
    for year in (2023, 2024):
        np.testing.assert_allclose(by_year[year][0][:, row, col], expected_at(lon, lat, year), atol=1e-6)
    lon, lat = patch_centre(6.02, 45.005)  # east of 6°E: only 2024 has a tile there
    x, y = to_crs(32632, lon, lat)
    col, row = int((x - gt[0]) // gt[1]), int((y - gt[3]) // gt[5])
    assert np.all(by_year[2023][0][:, row, col] == -9999.0)
    np.testing.assert_allclose(by_year[2024][0][:, row, col], expected_at(lon, lat, 2024), atol=1e-6)


def test_a_missing_year_is_skipped_with_one_warning(index, tmp_path):
    log = QuietLog()
    request = LoadRequest(output=str(tmp_path / "aef.tif"), source=index, extent=EXTENT)
    results = run_years(request, [2019, 2024], log)
    assert [r.provenance.year for r in results] == [2024]
    assert sorted(os.listdir(tmp_path)) == ["aef_2024.tif"]
    warnings = [w for w in log.warnings if "2019" in w]
    assert len(warnings) == 1 and "skipped" in warnings[0] and "2023-2024" in warnings[0]


def test_no_year_found_is_one_line_naming_the_years_available(index, tmp_path):
    request = LoadRequest(output=str(tmp_path / "aef.tif"), source=index, extent=EXTENT)
    with pytest.raises(GeoEmbedError) as info:
        run_years(request, [2019, 2020], QuietLog())
    message = assert_one_line(info.value)
    assert "2019-2020" in message and "2023-2024" in message
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def tile_folder(aef_mirror, tmp_path_factory):
    """A folder of 31N tiles without an index: {year}/31N/*.tiff; 2024 has two tiles, 2023 one."""
    folder = tmp_path_factory.mktemp("tiles")
    for year in ("2023", "2024"):
        shutil.copytree(aef_mirror / "v1" / "annual" / year / "31N", folder / year / "31N")
    return folder


def test_without_extent_the_first_year_decides_the_grid(tile_folder, tmp_path):
    results = run_years(LoadRequest(output=str(tmp_path / "t.tif"), source=str(tile_folder)), [2023, 2024], QuietLog())
    first, second = (read(r.output) for r in results)
    assert first[1] == second[1]
    alone = run(LoadRequest(output=str(tmp_path / "alone_2024.tif"), source=str(tile_folder), year=2024), QuietLog())
    values, (gt, width, height, _), _ = read(alone.output)
    assert height > second[1][2]  # alone, 2024 covers its two tiles; with 2023 first, only 2023's one
    # Both grids are anchored on the tiles' origin: the 2024 file is the part of 2024's own load under 2023's grid.
    (gt2, width2, height2, _) = second[1]
    col0, row0 = round((gt2[0] - gt[0]) / gt[1]), round((gt2[3] - gt[3]) / gt[5])
    np.testing.assert_array_equal(second[0], values[:, row0 : row0 + height2, col0 : col0 + width2])


def test_a_single_file_has_its_own_year_only(aef_mirror, aef_specs, tmp_path):
    spec = next(s for s in aef_specs if s.year == 2024 and s.zone == "32N")
    tile = aef_mirror / "v1" / "annual" / spec.relative_path
    log = QuietLog()
    results = run_years(LoadRequest(output=str(tmp_path / "t.tif"), source=str(tile)), [2023, 2024], log)
    assert [r.provenance.year for r in results] == [2024]
    assert len([w for w in log.warnings if "2023" in w]) == 1
    with pytest.raises(GeoEmbedError) as info:
        run_years(LoadRequest(output=str(tmp_path / "u.tif"), source=str(tile)), [2021, 2022], QuietLog())
    assert "2024" in assert_one_line(info.value)


def test_cancel_between_years_removes_the_years_written(index, tmp_path):
    started = []
    request = LoadRequest(output=str(tmp_path / "aef.tif"), source=index, extent=EXTENT)
    with pytest.raises(Cancelled):
        cancel_after_first = lambda: bool(started) and started[-1] >= 0.5  # noqa: E731
        run_years(request, [2023, 2024], QuietLog(), progress=started.append, is_cancelled=cancel_after_first)
    assert started and max(started) == pytest.approx(0.5)  # the first year was written in full
    assert leftovers(tmp_path) == []


def test_a_failure_in_a_later_year_removes_the_earlier_ones(index, tmp_path, monkeypatch):
    write, calls = years_module.write_geotiff, []

    def failing(raster, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise GeoEmbedError("disk full")
        return write(raster, path, *args, **kwargs)

    monkeypatch.setattr(years_module, "write_geotiff", failing)
    request = LoadRequest(output=str(tmp_path / "aef.tif"), source=index, extent=EXTENT)
    with pytest.raises(GeoEmbedError, match="disk full"):
        run_years(request, [2023, 2024], QuietLog())
    assert len(calls) == 2 and leftovers(tmp_path) == []


def test_progress_spans_all_years(index, tmp_path):
    fractions = []
    request = LoadRequest(output=str(tmp_path / "aef.tif"), source=index, extent=EXTENT)
    run_years(request, [2022, 2023, 2024], QuietLog(), progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0.33 < f < 0.67 for f in fractions) and min(fractions) > 1 / 3  # 2022 is missing: its third is skipped


def test_a_source_without_years_is_refused(tmp_path):
    """Rasters that do not say their year give the same files for every year: refused, not mislabelled."""
    path = tmp_path / "src" / "plain.tif"
    path.parent.mkdir()
    write_not_aef_tiff(path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(GeoEmbedError) as info:
        run_years(LoadRequest(output=str(out / "g.tif"), product="generic", source=str(path)), [2023, 2024], QuietLog())
    assert "tell years apart" in assert_one_line(info.value)
    assert os.listdir(out) == []


# --- a raster that chose its own grid, put onto the shared one ----------------------------------------------


@dataclass
class ArrayRaster(EmbeddingRaster):
    values: np.ndarray
    grid: Grid
    band_names: tuple = ("a", "b")
    provenance: Provenance = None

    def read(self, window):
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        values = self.values[:, rows, cols]
        return EmbeddingBlock(values, ~np.isnan(values).any(axis=0))

    def close(self):
        pass


def test_onto_grid_is_nearest_neighbour_with_nodata_outside():
    values = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    source = ArrayRaster(values, Grid("EPSG:32631", 1000.0, 2000.0, 10.0, 10.0, 6, 4))
    assert onto_grid(source, source.grid) is source
    shifted = Grid("EPSG:32631", 1020.0, 2010.0, 10.0, 10.0, 6, 4)  # two columns east, one row north
    moved = onto_grid(source, shifted)
    block = moved.read(Window(0, 0, 6, 4))
    assert not block.valid[0].any() and not block.valid[:, 4:].any()
    np.testing.assert_array_equal(block.values[:, 1:, :4], values[:, :3, 2:])
    coarse = onto_grid(source, Grid("EPSG:32631", 1000.0, 2000.0, 20.0, 20.0, 3, 2))
    np.testing.assert_array_equal(coarse.read(Window(0, 0, 3, 2)).values, values[:, 1::2, 1::2])
