"""geoembed:trajectory through Processing, checked against brute force on four years with known changes.

The 2024 embedding is made by geoembed:load from the session's AEF mirror; the four years 2021-2024 are written
here with GDAL from it: small noise every year, a box whose vectors turn in 2022 and another in 2023 (both kept
afterwards), and a nodata box in 2021. Expectations come from those arrays (numpy, float64), never from
geoembed.analysis. Raster outputs are read back through QGIS's raster provider.
"""

import shutil

import numpy as np
import pytest
from qgis.core import (
    Qgis,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from .refusals import assert_refused
from .test_analysis_algorithms import EXTENT, NODATA, RecordingFeedback, files_in, read_band, read_embedding, run, run_cpp
from .test_analysis_change_compare import projection_of, write_raster

YEARS = [2021, 2022, 2023, 2024]
BOXES = {2022: (60, 110, 200, 280), 2023: (240, 290, 100, 180)}  # rows, cols whose vectors turn that year
HOLE_2021 = (0, 30, 0, 50)
TOLERANCE = 1e-5
ARROW = "\u2192"


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("trajectory-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    return read_embedding(output)


def make_years(emb):
    """{year: (values float32 (64, rows, cols) with NODATA, valid)}."""
    rng = np.random.default_rng(14)
    values = emb.values.astype(np.float64)
    out = {}
    for year in YEARS:
        values = values + 0.002 * rng.normal(size=values.shape)
        if year in BOXES:
            r0, r1, c0, c1 = BOXES[year]
            values[:, r0:r1, c0:c1] = np.roll(values[:, r0:r1, c0:c1], 17, axis=0)
        valid = emb.valid.copy()
        if year == 2021:
            r0, r1, c0, c1 = HOLE_2021
            valid[r0:r1, c0:c1] = False
        year_values = np.where(valid, values, NODATA).astype(np.float32)
        out[year] = (year_values, valid)
    return out


@pytest.fixture(scope="module")
def years(embedding, tmp_path_factory):
    """{year: (path, values, valid)}, one Float32 GeoTIFF per year with GEOEMBED_YEAR."""
    folder = tmp_path_factory.mktemp("years")
    out = {}
    for year, (values, valid) in make_years(embedding).items():
        path = write_raster(folder / f"emb_{year}.tif", values, embedding.geotransform, projection_of(embedding), year=year)
        out[year] = (path, values, valid)
    for year, (r0, r1, c0, c1) in BOXES.items():
        assert out[year][2][r0:r1, c0:c1].mean() > 0.9, "the changed boxes should lie on valid pixels"
    return out


def unit(values):
    values = values.astype(np.float64)
    return values / np.linalg.norm(values, axis=0)


def brute_distances(series):
    """(pairs, rows, cols) float64 1 - cos between consecutive years; NaN where either is invalid."""
    out = []
    for (a, va), (b, vb) in zip(series[:-1], series[1:]):
        cos = (unit(a) * unit(b)).sum(axis=0)
        out.append(np.where(va & vb, 1.0 - cos, np.nan))
    return np.array(out)


def brute_anomalies(series):
    """(years, rows, cols) 1 - cos to the normalised mean of the valid years' unit vectors (>= 2 valid years)."""
    units = [np.where(valid, unit(values), 0.0) for values, valid in series]
    count = sum(valid.astype(int) for _, valid in series)
    mean = sum(units)
    with np.errstate(invalid="ignore"):  # no valid year: NaN, masked below
        mean = mean / np.linalg.norm(mean, axis=0)
    return np.array(
        [np.where(valid & (count >= 2), 1.0 - (u * mean).sum(axis=0), np.nan) for u, (_, valid) in zip(units, series)]
    )


def read_bands(path):
    """Every band through QGIS's raster provider: (bands, rows, cols) float64 with NaN on nodata, and the layer."""
    layer = QgsRasterLayer(str(path), "read", "gdal")
    return np.array([read_band(path, band)[0] for band in range(1, layer.bandCount() + 1)]), layer


def read_uint16(path):
    layer = QgsRasterLayer(str(path), "break", "gdal")
    assert layer.isValid()
    provider = layer.dataProvider()
    assert provider.dataType(1) == Qgis.DataType.UInt16
    block = provider.block(1, layer.extent(), layer.width(), layer.height())
    values = np.frombuffer(bytes(block.data()), dtype=np.uint16).reshape(layer.height(), layer.width())
    return values, block.noDataValue() if block.hasNoDataValue() else None, layer


@pytest.fixture(scope="module")
def result(years, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trajectory")
    outputs = {
        "OUTPUT": folder / "distance.tif",
        "OUTPUT_BREAK_YEAR": folder / "break_year.tif",
        "OUTPUT_BREAK_SIZE": folder / "break_size.tif",
        "OUTPUT_ANOMALY": folder / "anomaly.tif",
        "OUTPUT_TABLE": folder / "pairs.csv",
    }
    feedback = RecordingFeedback()
    shuffled = [years[y][0] for y in (2023, 2021, 2024, 2022)]  # ordered by GEOEMBED_YEAR, not as given
    results = run("trajectory", {"INPUT": shuffled, **{k: str(v) for k, v in outputs.items()}}, feedback)
    series = [(years[y][1], years[y][2]) for y in YEARS]
    return {
        "results": results,
        "outputs": outputs,
        "feedback": feedback,
        "distances": brute_distances(series),
        "anomalies": brute_anomalies(series),
        "folder": folder,
    }


def test_trajectory_distances_equal_brute_force_in_year_order(embedding, result):
    got, layer = read_bands(result["outputs"]["OUTPUT"])
    expected = result["distances"]
    assert got.shape == expected.shape == (3, embedding.height, embedding.width)
    assert [layer.bandName(i) for i in (1, 2, 3)] == [
        f"Band {i}: {a}{ARROW}{b}" for i, (a, b) in enumerate(zip(YEARS[:-1], YEARS[1:]), start=1)
    ]
    assert layer.crs().authid() == f"EPSG:{embedding.epsg}"
    assert layer.dataProvider().sourceNoDataValue(1) == NODATA
    assert np.array_equal(np.isnan(got), np.isnan(expected)), "nodata where either year is nodata"
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < TOLERANCE
    assert result["results"]["YEARS"] == "2021,2022,2023,2024"
    assert any(line.startswith("Years: 2021 (emb_2021.tif)") for line in result["feedback"].infos)


def test_trajectory_break_year_and_size_are_the_largest_valid_pair(embedding, result):
    expected = result["distances"]
    year, nodata, layer = read_uint16(result["outputs"]["OUTPUT_BREAK_YEAR"])
    size, _ = read_band(result["outputs"]["OUTPUT_BREAK_SIZE"])
    assert nodata == 0
    any_valid = (~np.isnan(expected)).any(axis=0)
    filled = np.where(np.isnan(expected), -1.0, expected)
    later = np.array(YEARS[1:])[filled.argmax(axis=0)]
    threshold = result["results"]["USED_THRESHOLD"]
    largest = filled.max(axis=0)
    changed = any_valid & (largest > threshold)
    near = np.abs(largest - threshold) < 1e-5  # float32 against float64: either side of the threshold
    assert np.array_equal((year == 0)[~near], ~changed[~near]), "a break year only where the pixel changed"
    assert np.array_equal(np.isnan(size), ~any_valid)
    assert np.abs(size[any_valid] - largest[any_valid]).max() < TOLERANCE
    close = np.sort(filled, axis=0)[-1] - np.sort(filled, axis=0)[-2] < 1e-4  # float32 ties may pick either
    assert np.array_equal(year[changed & ~close & ~near], later[changed & ~close & ~near])
    for change_year, (r0, r1, c0, c1) in BOXES.items():
        box = year[r0:r1, c0:c1]
        assert (box[box > 0] == change_year).all(), f"the {change_year} box breaks in {change_year}"
        assert (box > 0).mean() > 0.9, f"the {change_year} box has changed"
    assert isinstance(layer.renderer(), QgsPalettedRasterRenderer), "the default style is paletted"
    assert {int(c.value): c.label for c in layer.renderer().classes()} == {2022: "2022", 2023: "2023", 2024: "2024"}


def test_trajectory_anomaly_is_the_distance_to_the_mean_direction(result):
    got, layer = read_bands(result["outputs"]["OUTPUT_ANOMALY"])
    expected = result["anomalies"]
    assert got.shape == expected.shape
    assert [layer.bandName(i).split(": ")[1] for i in range(1, 5)] == [str(y) for y in YEARS]
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < TOLERANCE
    r0, r1, c0, c1 = BOXES[2022]
    assert np.nanmean(got[0, r0:r1, c0:c1]) > 10 * np.nanmedian(got[0]), "2021 is the odd year out in the 2022 box"


def test_trajectory_table_and_summary_count_pixels_and_hectares(result):
    results, expected = result["results"], result["distances"]
    threshold = results["USED_THRESHOLD"]
    table = QgsVectorLayer(str(result["outputs"]["OUTPUT_TABLE"]), "pairs", "ogr")
    assert table.isValid()
    rows = [{name: f[name] for name in table.fields().names()} for f in table.getFeatures()]
    assert [r["pair"] for r in rows] == [f"{a}{ARROW}{b}" for a, b in zip(YEARS[:-1], YEARS[1:])]
    for pair, row in enumerate(rows):
        ok = ~np.isnan(expected[pair])
        changed = int((expected[pair][ok] > threshold).sum())
        assert (int(row["from_year"]), int(row["to_year"])) == (YEARS[pair], YEARS[pair + 1])
        assert int(row["valid_pixels"]) == int(ok.sum())
        assert abs(int(row["changed_pixels"]) - changed) <= 2, "float32 rounding at the threshold"
        assert float(row["changed_ha"]) == pytest.approx(int(row["changed_pixels"]) * 0.01)
        assert float(row["valid_ha"]) == pytest.approx(ok.sum() * 0.01)
        assert float(row["threshold"]) == pytest.approx(threshold)
    for pair, change_year in ((0, 2022), (1, 2023), (2, None)):
        r0, r1, c0, c1 = BOXES.get(change_year, (0, 0, 0, 0))
        box = int((~np.isnan(expected[pair][r0:r1, c0:c1])).sum())
        assert box - 3 <= int(rows[pair]["changed_pixels"]) <= box + 3, f"pair {pair}: the box that turned, nothing else"
    ever = (np.where(np.isnan(expected), -1, expected) > threshold).any(axis=0)
    assert abs(results["CHANGED_PIXELS"] - int(ever.sum())) <= 2
    assert results["VALID_PIXELS"] == int((~np.isnan(expected)).any(axis=0).sum())
    assert results["CHANGED_AREA"] == pytest.approx(results["CHANGED_PIXELS"] * 0.01)
    infos = result["feedback"].infos
    assert any("Otsu" in line for line in infos)
    assert any(line.startswith(f"2022{ARROW}2023: {int(rows[1]['changed_pixels'])} of") for line in infos), infos
    assert any(line.startswith("Changed between at least one pair of years") for line in infos)
    written = [name for name in files_in(result["folder"]) if not name.endswith(".aux.xml")]  # QGIS's statistics
    assert written == ["anomaly.tif", "break_size.tif", "break_year.qml", "break_year.tif", "distance.tif", "pairs.csv"]


def test_trajectory_puts_a_year_on_another_grid_on_the_first_grid_with_nearest(embedding, years, tmp_path):
    values, valid = years[2024][1], years[2024][2]
    gt = list(embedding.geotransform)
    gt[0] += 30.0  # three pixels east, two south, and smaller
    gt[3] -= 20.0
    cropped = values[:, 2:-5, 3:-7]
    shifted = write_raster(tmp_path / "shifted_2024.tif", cropped, gt, projection_of(embedding), year=2024)
    output = tmp_path / "out" / "d.tif"
    feedback = RecordingFeedback()
    run("trajectory", {"INPUT": [years[2023][0], shifted], "OUTPUT": str(output)}, feedback)
    assert any("2024 is on another grid" in line and "nearest" in line for line in feedback.infos), feedback.infos
    moved = np.full(values.shape, NODATA, dtype=np.float32)
    moved[:, 2:-5, 3:-7] = cropped
    moved_valid = np.zeros(valid.shape, bool)
    moved_valid[2:-5, 3:-7] = valid[2:-5, 3:-7]
    expected = brute_distances([(years[2023][1], years[2023][2]), (moved, moved_valid)])[0]
    got, _ = read_band(output)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < TOLERANCE


def test_trajectory_without_years_keeps_the_order_given_and_says_so(embedding, years, tmp_path):
    plain = []
    for year in (2022, 2021):
        plain.append(
            write_raster(tmp_path / f"plain_{year}.tif", years[year][1], embedding.geotransform, projection_of(embedding))
        )
    output, breaks = tmp_path / "out" / "d.tif", tmp_path / "out" / "b.tif"
    feedback = RecordingFeedback()
    results = run("trajectory", {"INPUT": plain, "OUTPUT": str(output), "OUTPUT_BREAK_YEAR": str(breaks)}, feedback)
    assert results["YEARS"] == "1,2"
    assert any("order given" in line and "plain_2022.tif" in line for line in feedback.warnings), feedback.warnings
    _, layer = read_bands(output)
    assert layer.bandName(1) == f"Band 1: 1{ARROW}2"
    year, _, _ = read_uint16(breaks)
    assert set(np.unique(year)) <= {0, 2}


def test_trajectory_takes_paths_and_a_folder_as_qgis_process_gives_them(years, result, tmp_path):
    """checkParameterValues + the C++ run, as qgis_process does: a list of paths, then one folder of per-year files."""
    folder = tmp_path / "years"
    folder.mkdir()
    for year in YEARS:
        shutil.copy(years[year][0], folder / f"emb_{year}.tif")
    shutil.copy(result["outputs"]["OUTPUT"], folder / "an_earlier_trajectory.tif")  # an analysis output: not a year
    reference = read_bands(result["outputs"]["OUTPUT"])[0]
    for value in ([str(folder / f"emb_{y}.tif") for y in YEARS], str(folder)):
        output = tmp_path / "out" / "d.tif"
        results = run_cpp("trajectory", {"INPUT": value, "OUTPUT": str(output), "THRESHOLD": 0.1})
        assert results["YEARS"] == "2021,2022,2023,2024"
        got = read_bands(output)[0]
        assert np.array_equal(np.isnan(got), np.isnan(reference)) and np.nanmax(np.abs(got - reference)) == 0
        output.unlink()


def test_trajectory_takes_layers_and_layer_ids(years, result, project, tmp_path):
    layers = [QgsRasterLayer(years[y][0], f"emb {y}", "gdal") for y in YEARS]
    project.addMapLayers(layers[2:])
    value = [layers[0], layers[1], layers[2].id(), "emb 2024"]  # layer objects, a project layer's id and name
    output = tmp_path / "d.tif"
    context = QgsProcessingContext()
    context.setProject(project)
    results = run_cpp("trajectory", {"INPUT": value, "OUTPUT": str(output)}, context=context)
    assert results["YEARS"] == "2021,2022,2023,2024"
    got, reference = read_bands(output)[0], read_bands(result["outputs"]["OUTPUT"])[0]
    assert np.array_equal(np.isnan(got), np.isnan(reference)) and np.nanmax(np.abs(got - reference)) == 0


def test_trajectory_run_and_load_results_styles_the_layers(years, tmp_path):
    import processing

    project = QgsProject.instance()
    before = set(project.mapLayers())
    output, breaks = tmp_path / "d.tif", tmp_path / "b.tif"
    try:
        processing.runAndLoadResults(
            "geoembed:trajectory",
            {"INPUT": [years[y][0] for y in YEARS], "OUTPUT": str(output), "OUTPUT_BREAK_YEAR": str(breaks)},
        )
        loaded = {lyr.source(): lyr for lyr_id, lyr in project.mapLayers().items() if lyr_id not in before}
        assert set(loaded) == {str(output), str(breaks)}
        distance = loaded[str(output)]
        assert distance.name() == "Trajectory (consecutive cosine distances)"
        assert isinstance(distance.renderer(), QgsSingleBandPseudoColorRenderer)
        assert distance.renderer().classificationMin() == 0.0 and 0 < distance.renderer().classificationMax() <= 2.0
        renderer = loaded[str(breaks)].renderer()
        assert isinstance(renderer, QgsPalettedRasterRenderer)
        classes = renderer.classes()
        assert [c.label for c in classes] == ["2022", "2023", "2024"]
        assert len({c.color.name() for c in classes}) == 3, "one colour per year"
    finally:
        for layer_id in set(project.mapLayers()) - before:
            project.removeMapLayer(layer_id)


def _other_bands(emb, years, folder):
    return [years[2021][0], write_raster(folder / "b.tif", years[2022][1][:32], emb.geotransform, projection_of(emb), year=2022)]


def _same_year(emb, years, folder):
    return [
        years[2021][0],
        years[2022][0],
        write_raster(folder / "c.tif", years[2022][1], emb.geotransform, projection_of(emb), year=2022),
    ]


def _far_away(emb, years, folder):
    gt = list(emb.geotransform)
    gt[0] += 200_000.0
    return [years[2021][0], write_raster(folder / "far.tif", years[2022][1], gt, projection_of(emb), year=2022)]


@pytest.mark.parametrize(
    "make, extra, words",
    [
        (_other_bands, {}, ["INPUT 2022", "64 bands", "32 bands"]),
        (_same_year, {}, ["two rasters of 2022", "one raster per year"]),
        (_far_away, {}, ["2022", "overlap"]),
        (lambda emb, years, folder: [years[2021][0]], {}, ["1 raster", "two or more"]),
        (lambda emb, years, folder: [years[2021][0], str(folder / "missing.tif")], {}, ["missing.tif", "does not exist"]),
        (lambda emb, years, folder: [years[2021][0], years[2022][0]], {"THRESHOLD": 2.5}, ["THRESHOLD", "below 2"]),
    ],
    ids=["other-bands", "same-year", "no-overlap", "one-year", "missing-file", "threshold-too-high"],
)
def test_trajectory_refuses_bad_inputs_in_one_line(embedding, years, tmp_path, make, extra, words):
    inputs = make(embedding, years, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    parameters = {"INPUT": inputs, **extra, "OUTPUT": str(out / "d.tif"), "OUTPUT_BREAK_YEAR": str(out / "y.tif")}
    parameters["OUTPUT_ANOMALY"] = str(out / "a.tif")
    parameters["OUTPUT_TABLE"] = str(out / "t.csv")
    assert_refused("trajectory", parameters, words, out, case=str(words))
