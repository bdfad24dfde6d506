"""geoembed:trajectory through `qgis_process.bin`, with INPUT given several times as a user types it: two raw AEF
tiles (2023, 2024) and a GeoEmbed GeoTIFF of 2022, in no particular order; then a folder of per-year GeoTIFFs; then
bad inputs. Expectations come from the fixture's own int8 codes de-quantised here with the published formula.
"""

import csv

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import NODATA, assert_fails_cleanly, json_of, output_of, tile_31n, write_embedding
from tests.e2e.test_analysis_cli import Tile, log_text
from tests.e2e.test_change_compare_cli import dequantised

ARROW = "\u2192"
BOX_2023 = (40, 90, 150, 250)  # rows, cols of the 2022 raster that differ from 2023 (turned vectors)


def trajectory_args(inputs, **params):
    """`--json run geoembed:trajectory -- INPUT=a INPUT=b ... KEY=value` (single argv items: no shell quoting)."""
    return [
        "--json",
        "run",
        "geoembed:trajectory",
        "--",
        *(f"INPUT={path}" for path in inputs),
        *(f"{key}={value}" for key, value in params.items()),
    ]


@pytest.fixture(scope="module")
def years(aef_mirror, aef_specs, tmp_path_factory):
    """{year: (input path, values float64, valid)}: 2023 and 2024 raw tiles, 2022 = 2023 with a turned box."""
    folder = tmp_path_factory.mktemp("e2e-trajectory")
    out = {}
    for year in (2023, 2024):
        spec, raw = tile_31n(aef_mirror, aef_specs, year)
        out[year] = (raw, *dequantised(spec))
    tile = Tile(spec, folder / "embeddings_2022.tif", out[2024][0])
    values, valid = out[2023][1].copy(), out[2023][2]
    r0, r1, c0, c1 = BOX_2023
    values[:, r0:r1, c0:c1] = np.roll(values[:, r0:r1, c0:c1], 11, axis=0)
    assert valid[r0:r1, c0:c1].mean() > 0.9
    out[2022] = (write_embedding(tile.path, np.where(valid, values, NODATA), tile, year=2022), values, valid)
    out["tile"] = tile  # the grid the GeoTIFFs are written on
    return out


def distance(a, valid_a, b, valid_b):
    cos = (a * b).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    return np.where(valid_a & valid_b, 1.0 - cos, np.nan)


def test_trajectory_cli_with_several_inputs(qgis_process, years, tmp_path):
    out = tmp_path / "out"
    output, breaks, table = out / "distance.tif", out / "break.tif", out / "pairs.csv"
    inputs = [years[2024][0], years[2022][0], years[2023][0]]
    completed = qgis_process(*trajectory_args(inputs, OUTPUT=output, OUTPUT_BREAK_YEAR=breaks, OUTPUT_TABLE=table))
    results = json_of(completed)["results"]
    assert results["YEARS"] == "2022,2023,2024" and results["OUTPUT"] == str(output)
    expected = np.array([distance(*years[a][1:], *years[b][1:]) for a, b in ((2022, 2023), (2023, 2024))])
    dataset = gdal.Open(str(output))
    assert [dataset.GetRasterBand(i).GetDescription() for i in (1, 2)] == [f"2022{ARROW}2023", f"2023{ARROW}2024"]
    got = dataset.ReadAsArray().astype(np.float64)
    dataset = None
    ok = ~np.isnan(expected)
    assert (got[~ok] == NODATA).all()
    assert np.abs(got[ok] - expected[ok]).max() < 1e-5
    year = gdal.Open(str(breaks)).ReadAsArray()
    filled = np.where(ok, expected, -1.0)
    any_valid = ok.any(axis=0)
    threshold = results["USED_THRESHOLD"]
    largest = filled.max(axis=0)
    assert (year[~any_valid | (largest < threshold - 1e-5)] == 0).all(), "a break year only where the pixel changed"
    clear = any_valid & (np.abs(filled[0] - filled[1]) > 1e-4) & (largest > threshold + 1e-5)
    assert np.array_equal(year[clear], np.where(filled[0] >= filled[1], 2023, 2024)[clear])
    r0, r1, c0, c1 = BOX_2023
    box = year[r0:r1, c0:c1]
    assert (box[box > 0] == 2023).all(), "the turned box breaks in 2023"
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["pair"] for r in rows] == [f"2022{ARROW}2023", f"2023{ARROW}2024"]
    for pair, row in enumerate(rows):
        valid = ok[pair]
        changed = int((got[pair][valid] > threshold).sum())
        assert int(row["valid_pixels"]) == int(valid.sum()) and int(row["changed_pixels"]) == changed
        assert float(row["changed_ha"]) == pytest.approx(changed * 0.01)
    assert f"2022{ARROW}2023: {rows[0]['changed_pixels']} of {rows[0]['valid_pixels']} valid pixels" in log_text(completed)
    assert "Traceback" not in output_of(completed)
    assert sorted(p.name for p in out.iterdir()) == ["break.qml", "break.tif", "distance.tif", "pairs.csv"]


def test_trajectory_cli_with_a_folder_of_years(qgis_process, years, tmp_path):
    """One INPUT: a folder of per-year GeoEmbed GeoTIFFs (as geoembed:load with YEARS writes them)."""
    folder = tmp_path / "years"
    folder.mkdir()
    for year in (2023, 2022):
        values = np.where(years[year][2], years[year][1], NODATA)
        write_embedding(folder / f"emb_{year}.tif", values, years["tile"], year=year)
    output = tmp_path / "out" / "distance.tif"
    completed = qgis_process(*trajectory_args([folder], OUTPUT=output, THRESHOLD=0.05))
    results = json_of(completed)["results"]
    assert results["YEARS"] == "2022,2023" and results["USED_THRESHOLD"] == 0.05
    expected = distance(*years[2022][1:], *years[2023][1:])
    got = gdal.Open(str(output)).ReadAsArray().astype(np.float64)
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < 1e-5 and (got[~ok] == NODATA).all()
    assert results["CHANGED_PIXELS"] == int((got[ok] > 0.05).sum())


BAD = {
    "same-year": (lambda y: [y[2023][0], y[2023][0]], {}, ["two rasters of 2023", "one raster per year"]),
    "one-year": (lambda y: [y[2023][0]], {}, ["1 raster", "two or more"]),
    "missing": (lambda y: [y[2023][0], "/nonexistent/emb_2025.tif"], {}, ["emb_2025.tif", "does not exist"]),
    "threshold": (lambda y: [y[2023][0], y[2024][0]], {"THRESHOLD": 3}, ["THRESHOLD", "below 2"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_trajectory_cli_bad_input_fails_cleanly(qgis_process, years, tmp_path, case):
    build, extra, words = BAD[case]
    out = tmp_path / "out"
    completed = qgis_process(*trajectory_args(build(years), **extra, OUTPUT=out / "d.tif", OUTPUT_BREAK_YEAR=out / "y.tif"))
    assert_fails_cleanly(completed, words, out, tmp_path)
