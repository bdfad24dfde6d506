"""geoembed:change, geoembed:compare and geoembed:intrinsicdim through `qgis_process.bin`, with file paths as a user
types them. Expectations come from the fixture's own int8 codes de-quantised here with the published formula.
Seven qgis_process runs: three that work, four bad inputs.
"""

import csv

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import NODATA, assert_fails_cleanly, json_of, output_of, tile_31n, write_embedding
from tests.e2e.test_analysis_cli import Tile, log_text, run_args, write_points
from tests.fixtures.aef import tile_codes


@pytest.fixture(scope="module")
def tiles(aef_mirror, aef_specs, tmp_path_factory):
    """The 2024 and 2023 31N tiles (same grid): {year: Tile}, the 2024 one also written as an embedding GeoTIFF."""
    out = {}
    folder = tmp_path_factory.mktemp("e2e-change")
    for year in (2024, 2023):
        spec, raw = tile_31n(aef_mirror, aef_specs, year)
        out[year] = Tile(spec, folder / f"embeddings_{year}.tif", raw)
    write_embedding(out[2024].path, out[2024].values, out[2024])
    return out


def dequantised(spec):
    """(values float64, valid) of a fixture tile from its codes: ((q / 127.5) ** 2) * sign(q), -128 = nodata."""
    codes = tile_codes(spec).astype(np.float64)
    return (codes / 127.5) ** 2 * np.sign(codes), ~(codes == -128).any(axis=0)


def test_change_cli_between_two_years_of_raw_aef_tiles(qgis_process, tiles, tmp_path):
    new, old = tiles[2024], tiles[2023]
    out = tmp_path / "out"
    output, mask = out / "distance.tif", out / "mask.tif"
    completed = qgis_process(*run_args("change", INPUT=old.raw, INPUT_2=new.raw, OUTPUT=output, OUTPUT_MASK=mask))
    results = json_of(completed)["results"]
    assert results["OUTPUT"] == str(output) and results["OUTPUT_MASK"] == str(mask)
    a, valid_a = dequantised(old.spec)
    b, valid_b = dequantised(new.spec)
    ok = valid_a & valid_b
    expected = 1.0 - (a * b).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    got = gdal.Open(str(output)).ReadAsArray().astype(np.float64)
    assert (got[~ok] == NODATA).all()
    assert np.abs(got[ok] - expected[ok]).max() < 1e-5
    threshold = results["USED_THRESHOLD"]
    codes = gdal.Open(str(mask)).ReadAsArray()
    assert (codes[~ok] == 255).all()
    assert np.array_equal(codes[ok] == 1, got[ok] > threshold)
    changed = int((got[ok] > threshold).sum())
    assert results["CHANGED_PIXELS"] == changed and results["VALID_PIXELS"] == int(ok.sum())
    assert results["CHANGED_AREA"] == pytest.approx(changed * 0.01)
    assert results["CHANGED_FRACTION"] == pytest.approx(changed / ok.sum())
    assert f"{changed} of {int(ok.sum())} valid pixels" in log_text(completed)
    assert "Traceback" not in output_of(completed)
    assert sorted(p.name for p in out.iterdir()) == ["distance.tif", "mask.qml", "mask.tif", "mask.tif.aux.xml"]


def test_compare_cli(qgis_process, tiles, tmp_path):
    tile = tiles[2024]
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(12, *tile.shape))
    noise[:, ~tile.valid] = NODATA
    other = write_embedding(tmp_path / "noise.tif", noise, tile, "noise", [f"N{i:02d}" for i in range(12)])
    rows, counts = [], {}
    for lon, lat in tile.safe_centres()[::2]:
        row, col = tile.pixel(lon, lat)
        label = "high" if tile.values[3, row, col] > tile.values[40, row, col] else "low"
        counts[label] = counts.get(label, 0) + 1
        rows.append(((lon, lat), {"cls": label}))
    training = write_points(tmp_path / "training.geojson", rows)
    out = tmp_path / "out"
    table, report = out / "table.csv", out / "report.html"
    completed = qgis_process(
        *run_args(
            "compare",
            INPUT=tile.path,
            INPUT_2=other,
            TRAINING=training,
            FIELD="cls",
            METHOD="knn",
            OUTPUT=table,
            OUTPUT_REPORT=report,
        )
    )
    results = json_of(completed)["results"]
    assert results["OUTPUT_REPORT"] == str(report) and results["OUTPUT"].startswith(str(table))
    assert results["SAMPLES"] == sum(counts.values())
    assert results["BEST"] == "INPUT" and results["ACCURACY"] > results["ACCURACY_2"]
    with open(table, newline="", encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert [(r["input"], r["product"], int(r["dims"]), int(r["best"])) for r in lines] == [
        ("INPUT", "aef", 64, 1),
        ("INPUT_2", "noise", 12, 0),
    ]
    assert float(lines[0]["accuracy"]) == pytest.approx(results["ACCURACY"])
    html = report.read_text(encoding="utf-8")
    assert "Use aef" in html and "noise (noise.tif)" in html
    for name, count in counts.items():
        assert f"<td class='l'>{name}</td><td>{count}</td>" in html
    assert "Use aef" in log_text(completed)


def test_intrinsicdim_cli_on_a_raw_tile(qgis_process, tiles, tmp_path):
    tile = tiles[2024]
    out = tmp_path / "out"
    table, plot = out / "spectrum.csv", out / "plot.html"
    completed = qgis_process(*run_args("intrinsicdim", INPUT=tile.raw, SAMPLE_SIZE=3000, OUTPUT=table, OUTPUT_PLOT=plot))
    results = json_of(completed)["results"]
    assert results["SAMPLES"] == 3000
    with open(table, newline="", encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert [int(r["component"]) for r in lines] == list(range(1, 65))
    ratios = np.array([float(r["explained_variance_ratio"]) for r in lines])
    cumulative = np.array([float(r["cumulative"]) for r in lines])
    assert np.allclose(np.cumsum(ratios), cumulative) and cumulative[-1] == pytest.approx(1.0)
    assert (np.diff(ratios) <= 1e-12).all(), "strongest component first"
    for level, key in ((0.90, "PCA_DIM_90"), (0.95, "PCA_DIM_95"), (0.99, "PCA_DIM_99")):
        assert results[key] == int(np.argmax(cumulative >= level - 1e-9)) + 1, key
    assert 1.0 < results["TWO_NN_DIM"] < 64.0 and results["DUPLICATES"] > 0, "patches of constant codes repeat"
    assert "duplicate" in log_text(completed) and "TwoNN intrinsic dimension" in log_text(completed)
    assert plot.read_text(encoding="utf-8").count("<svg") == 2


# === bad input =================================================================================


def _other_bands(tiles, folder):
    tile = tiles[2024]
    return {"INPUT": tile.path, "INPUT_2": write_embedding(folder / "b32.tif", tile.values[:32], tile, "tessera")}


def _single_class(tiles, folder):
    tile = tiles[2024]
    rows = [(p, {"cls": "forest"}) for p in tile.safe_centres()[:6]]
    return {
        "INPUT": tile.path,
        "INPUT_2": tiles[2023].raw,
        "TRAINING": write_points(folder / "one.geojson", rows),
        "FIELD": "cls",
    }


def _almost_empty(tiles, folder):
    values = np.full((64, 8, 8), NODATA)
    values[:, 0, :3] = 0.1
    return {"INPUT": write_embedding(folder / "empty.tif", values, tiles[2024])}


# id: (algorithm, parameters built from (tiles, tmp folder), outputs, words the error line must contain)
BAD = {
    "change-other-bands": ("change", _other_bands, {"OUTPUT": "d.tif", "OUTPUT_MASK": "m.tif"}, ["64 bands", "INPUT_2"]),
    "change-threshold": (
        "change",
        lambda t, d: {"INPUT": t[2024].path, "INPUT_2": t[2023].raw, "THRESHOLD": 3},
        {"OUTPUT": "d.tif"},
        ["THRESHOLD", "below 2"],
    ),
    "compare-single-class": (
        "compare",
        _single_class,
        {"OUTPUT": "t.csv", "OUTPUT_REPORT": "r.html"},
        ["single class", "forest"],
    ),
    "intrinsicdim-no-pixels": (
        "intrinsicdim",
        _almost_empty,
        {"OUTPUT": "t.csv", "OUTPUT_PLOT": "p.html"},
        ["only 3 valid pixels"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_cleanly(qgis_process, tiles, tmp_path, case):
    algorithm, build, names, words = BAD[case]
    out = tmp_path / "out"
    params = {**build(tiles, tmp_path), **{key: out / name for key, name in names.items()}}
    completed = qgis_process(*run_args(algorithm, **params))
    assert_fails_cleanly(completed, words, out, tmp_path)
