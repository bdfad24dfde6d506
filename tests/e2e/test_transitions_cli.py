"""One model over several years, then the transitions between two of them, through `qgis_process.bin` as a user runs
them: train once, classify 2024 with INPUTS (the raw 2023 tile and a 2022 GeoTIFF), transitions 2023 -> 2024.
Expectations come from the class maps read back with GDAL (np.unique over whole maps) and a classify of each year alone.
"""

import csv

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import NODATA, assert_fails_cleanly, json_of, leftovers, output_of, tile_31n, write_embedding
from tests.e2e.test_analysis_cli import Tile, run_args, write_points


@pytest.fixture(scope="module")
def tiles(aef_mirror, aef_specs, tmp_path_factory):
    """{year: Tile} of the 2024 and 2023 31N tiles (same grid) and a 2022 GeoTIFF (2023's bands rolled in a box)."""
    folder = tmp_path_factory.mktemp("e2e-years")
    out = {}
    for year in (2024, 2023):
        spec, raw = tile_31n(aef_mirror, aef_specs, year)
        out[year] = Tile(spec, None, raw)
    values = out[2023].values.copy()
    values[:, 10:200, 20:150] = np.roll(values[:, 10:200, 20:150], 9, axis=0)
    values[:, ~out[2023].valid] = NODATA
    out[2022] = write_embedding(folder / "aef_2022.tif", values, out[2023], year=2022)
    return out


@pytest.fixture(scope="module")
def model(qgis_process, tiles, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-years-model")
    centres = tiles[2024].safe_centres()[::3]
    rows = [(p, {"cls": "crop" if i % 5 == 0 else ("meadow" if i % 2 else "forest")}) for i, p in enumerate(centres)]
    training = write_points(folder / "training.geojson", rows)
    path = folder / "model.npz"
    completed = qgis_process(
        *run_args(
            "train",
            INPUT=tiles[2024].raw,
            TRAINING=training,
            FIELD="cls",
            METHOD="nearest_centroid",
            OUTPUT=folder / "train.tif",
            OUTPUT_MODEL=path,
        )
    )
    json_of(completed)
    return path


@pytest.fixture(scope="module")
def years(qgis_process, tiles, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e-classified") / "out"
    completed = qgis_process(
        *run_args("classify", INPUT=tiles[2024].raw, MODEL=model, OUTPUT=out / "classes.tif"),
        *(f"INPUTS={path}" for path in (tiles[2023].raw, tiles[2022])),
    )
    return json_of(completed)["results"], out


def test_classify_cli_writes_one_map_per_year_oldest_first(qgis_process, tiles, model, years, tmp_path):
    results, out = years
    assert results["OUTPUT"] == str(out / "classes.tif")
    assert results["OUTPUT_YEARS"] == [str(out / n) for n in ("classes_2022.tif", "classes_2023.tif", "classes.tif")]
    # 2023's map equals classifying 2023 alone
    alone = tmp_path / "alone.tif"
    json_of(qgis_process(*run_args("classify", INPUT=tiles[2023].raw, MODEL=model, OUTPUT=alone)))
    got = gdal.Open(str(out / "classes_2023.tif")).ReadAsArray()
    assert np.array_equal(got, gdal.Open(str(alone)).ReadAsArray())
    assert (got[~tiles[2023].valid] == 0).all() and (got[tiles[2023].valid] > 0).all()
    assert leftovers(out) == []


def test_transitions_cli_between_two_classified_years(qgis_process, years, tmp_path):
    _, classified = years
    before_path, after_path = classified / "classes_2023.tif", classified / "classes.tif"
    out = tmp_path / "out"
    table, report = out / "matrix.csv", out / "transitions.html"
    completed = qgis_process(
        *run_args(
            "transitions",
            INPUT=before_path,
            INPUT_2=after_path,
            OUTPUT=out / "transitions.tif",
            OUTPUT_TABLE=table,
            OUTPUT_REPORT=report,
        )
    )
    results = json_of(completed)["results"]
    dataset = gdal.Open(str(before_path))
    dataset.GetMetadata()  # GDAL 3.6's GTiff reads the .aux.xml (category names) only once metadata is asked for
    names = dataset.GetRasterBand(1).GetCategoryNames()[1:]
    before, after = dataset.ReadAsArray(), gdal.Open(str(after_path)).ReadAsArray()
    valid = (before > 0) & (after > 0)
    pairs, counts = np.unique(np.stack([before[valid], after[valid]]), axis=1, return_counts=True)
    expected = {(names[a - 1], names[b - 1]): int(n) for (a, b), n in zip(pairs.T, counts)}
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["from_class"] for r in rows] == names
    got = {(r["from_class"], to): int(r[f"{to}_pixels"]) for r in rows for to in names if int(r[f"{to}_pixels"])}
    assert got == expected
    total_ha = sum(float(r["total_ha"]) for r in rows)
    assert total_ha == pytest.approx(valid.sum() * 0.01)  # 10 m pixels: the matrix covers exactly the valid area
    changed = int((valid & (before != after)).sum())
    assert results["CHANGED_PIXELS"] == changed and results["VALID_PIXELS"] == int(valid.sum())
    assert changed > 0, "the set-up needs years whose classes differ"
    codes = gdal.Open(str(out / "transitions.tif")).ReadAsArray()
    assert (codes[~valid] == 0).all() and len(np.unique(codes[valid])) == len(expected)
    assert "Transition matrix" in report.read_text(encoding="utf-8")
    assert "Traceback" not in output_of(completed)
    assert sorted(p.name for p in out.iterdir()) == [
        "matrix.csv",
        "transitions.html",
        "transitions.qml",
        "transitions.tif",
        "transitions.tif.aux.xml",
    ]


def test_transitions_cli_refuses_an_embedding_as_class_map(qgis_process, tiles, years, tmp_path):
    _, classified = years
    out = tmp_path / "out"
    completed = qgis_process(
        *run_args("transitions", INPUT=classified / "classes.tif", INPUT_2=tiles[2022], OUTPUT=out / "t.tif")
    )
    assert_fails_cleanly(completed, ["64 bands", "class map"], out, tmp_path)
