"""geoembed:change, geoembed:compare and geoembed:intrinsicdim through Processing, checked against brute force.

The embedding layer is made by geoembed:load from the session's AEF mirror; the other rasters are written here with
GDAL from arrays the tests know. Expectations come from those arrays (numpy, float64) and from the fixture generator,
never from geoembed.analysis. Raster outputs are read back through QGIS's raster provider.
"""

import re

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsPalettedRasterRenderer,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from tests.fixtures.aef import expected_values

from .test_analysis_algorithms import (
    EXTENT,
    NODATA,
    RecordingFeedback,
    files_in,
    one_line_error,
    outside_lonlat,
    point_layer,
    read_band,
    read_embedding,
    run,
    run_cpp,
    safe_patch_centres,
)
from .test_analysis_train import dequantised_tile

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("change-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    return read_embedding(output)


def write_raster(path, values, geotransform, projection, product="aef", band_names=None, year=None):
    """A GeoEmbed-style Float32 GeoTIFF (GEOEMBED_PRODUCT set, -9999 nodata) of (bands, rows, cols) values."""
    values = np.asarray(values, dtype=np.float32)
    names = band_names or [f"A{i:02d}" for i in range(values.shape[0])]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[2], values.shape[1], values.shape[0], gdal.GDT_Float32)
    dataset.SetGeoTransform(tuple(geotransform))
    dataset.SetProjection(projection)
    meta = {"GEOEMBED_PRODUCT": product}
    if year:
        meta["GEOEMBED_YEAR"] = str(year)
    dataset.SetMetadata(meta)
    for index in range(values.shape[0]):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(names[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index])
    dataset = None
    return str(path)


def projection_of(emb):
    return gdal.Open(emb.path).GetProjection()


def brute_distance(a, valid_a, b, valid_b):
    """(rows, cols) float64 1 - cos over whole arrays; NaN where either is invalid."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    return np.where(valid_a & valid_b, 1.0 - cos, np.nan)


def read_byte(path):
    """Band 1 of a Byte raster through QGIS's raster provider: (values uint8, nodata value, layer)."""
    layer = QgsRasterLayer(str(path), "mask", "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    provider = layer.dataProvider()
    assert provider.dataType(1) == Qgis.DataType.Byte
    block = provider.block(1, layer.extent(), layer.width(), layer.height())
    values = np.frombuffer(bytes(block.data()), dtype=np.uint8).reshape(layer.height(), layer.width())
    return values, block.noDataValue() if block.hasNoDataValue() else None, layer


# === geoembed:change ===========================================================================


CHANGE_BOX = (60, 110, 200, 280)  # rows, cols of the embedding where the "after" raster changes


@pytest.fixture(scope="module")
def after(embedding, tmp_path_factory):
    """The embedding with a changed box (bands rotated: another direction), tiny noise elsewhere and its own nodata."""
    rng = np.random.default_rng(12)
    values = embedding.values.astype(np.float64) + 0.002 * rng.normal(size=embedding.values.shape)
    r0, r1, c0, c1 = CHANGE_BOX
    values[:, r0:r1, c0:c1] = np.roll(embedding.values[:, r0:r1, c0:c1], 17, axis=0)
    valid = embedding.valid.copy()
    valid[-25:, :40] = False
    values[:, ~valid] = NODATA
    values[:, ~embedding.valid] = NODATA
    valid &= embedding.valid
    assert valid[r0:r1, c0:c1].mean() > 0.9, "the changed box should lie on valid pixels"
    path = write_raster(tmp_path_factory.mktemp("after") / "after.tif", values, embedding.geotransform, projection_of(embedding))
    return path, values.astype(np.float32), valid


@pytest.fixture(scope="module")
def changed(embedding, after, tmp_path_factory):
    folder = tmp_path_factory.mktemp("change")
    outputs = {"OUTPUT": folder / "distance.tif", "OUTPUT_MASK": folder / "mask.tif"}
    feedback = RecordingFeedback()
    results = run("change", {"INPUT": embedding.path, "INPUT_2": after[0], **{k: str(v) for k, v in outputs.items()}}, feedback)
    expected = brute_distance(embedding.values, embedding.valid, after[1], after[2])
    return {"results": results, "outputs": outputs, "feedback": feedback, "expected": expected, "folder": folder}


def test_change_distance_equals_brute_force_cosine_distance(embedding, changed):
    got, layer = read_band(changed["outputs"]["OUTPUT"])
    expected = changed["expected"]
    assert (layer.width(), layer.height()) == (embedding.width, embedding.height)
    assert layer.crs().authid() == f"EPSG:{embedding.epsg}"
    assert layer.dataProvider().sourceNoDataValue(1) == NODATA
    assert np.array_equal(np.isnan(got), np.isnan(expected)), "nodata must be where either raster is nodata"
    ok = ~np.isnan(expected)
    assert np.abs(got[ok] - expected[ok]).max() < TOLERANCE


def test_change_mask_marks_distances_above_the_automatic_threshold(embedding, changed):
    results = changed["results"]
    threshold = results["USED_THRESHOLD"]
    distance, _ = read_band(changed["outputs"]["OUTPUT"])
    mask, nodata, layer = read_byte(changed["outputs"]["OUTPUT_MASK"])
    ok = ~np.isnan(changed["expected"])
    assert nodata == 255
    assert np.array_equal(mask == 255, ~ok)
    assert np.array_equal(mask[ok] == 1, distance[ok] > threshold)
    assert set(np.unique(mask[ok])) == {0, 1}
    r0, r1, c0, c1 = CHANGE_BOX
    box = np.zeros(ok.shape, bool)
    box[r0:r1, c0:c1] = True
    assert (mask[box & ok] == 1).all(), "the changed box is changed"
    assert (mask[~box & ok] == 0).all(), "tiny noise is not change"
    assert any("Otsu" in line for line in changed["feedback"].infos), changed["feedback"].infos
    assert changed["feedback"].warnings == [], "two clear groups: no warning about the automatic threshold"


def test_change_summary_counts_pixels_and_hectares(changed):
    results = changed["results"]
    expected, threshold = changed["expected"], results["USED_THRESHOLD"]
    ok = ~np.isnan(expected)
    distance, _ = read_band(changed["outputs"]["OUTPUT"])
    count = int((distance[ok] > threshold).sum())
    assert results["CHANGED_PIXELS"] == count
    assert results["VALID_PIXELS"] == int(ok.sum())
    assert results["CHANGED_AREA"] == pytest.approx(count * 100.0 / 1e4)  # 10 m pixels, in hectares
    assert results["CHANGED_FRACTION"] == pytest.approx(count / ok.sum())
    line = next(line for line in changed["feedback"].infos if line.startswith("Changed"))
    assert f"{count} of {int(ok.sum())} valid pixels" in line
    assert f"{count * 100 / 1e4:,.2f} ha" in line and f"{100 * count / ok.sum():.2f} %" in line


def test_change_mask_is_paletted_in_qgis(changed):
    layer = QgsRasterLayer(str(changed["outputs"]["OUTPUT_MASK"]), "mask", "gdal")
    assert layer.renderer().type() == "paletted"
    assert {int(c.value): c.label for c in layer.renderer().classes()} == {0: "unchanged", 1: "changed"}
    dataset = gdal.Open(str(changed["outputs"]["OUTPUT_MASK"]))  # kept alive while its band is used
    band = dataset.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 255
    assert band.GetRasterColorTable() is not None
    assert band.GetCategoryNames()[:2] == ["unchanged", "changed"]


def test_change_with_a_fixed_threshold_and_without_mask(embedding, after, changed, tmp_path):
    output = tmp_path / "distance.tif"
    results = run("change", {"INPUT": embedding.path, "INPUT_2": after[0], "THRESHOLD": 0.0001, "OUTPUT": str(output)})
    assert files_in(tmp_path) == ["distance.tif"]
    assert "OUTPUT_MASK" not in results or not results["OUTPUT_MASK"]
    assert results["USED_THRESHOLD"] == 0.0001
    distance, _ = read_band(output)
    ok = ~np.isnan(distance)
    assert results["CHANGED_PIXELS"] == int((distance[ok] > 0.0001).sum())
    assert results["CHANGED_PIXELS"] > changed["results"]["CHANGED_PIXELS"], "a lower threshold marks more pixels"
    assert np.array_equal(gdal.Open(str(output)).ReadAsArray(), gdal.Open(str(changed["outputs"]["OUTPUT"])).ReadAsArray())


def test_change_between_two_years_on_different_grids_uses_nearest(embedding, tile_2023_31n, tmp_path):
    """INPUT: the raw 2023 AEF tile (south-up int8); INPUT_2: the 2024 embedding on its own grid, put on INPUT's grid."""
    spec, tile = tile_2023_31n
    output = tmp_path / "distance.tif"
    feedback = RecordingFeedback()
    run("change", {"INPUT": str(tile), "INPUT_2": embedding.path, "OUTPUT": str(output)}, feedback)
    assert any("nearest" in line and "INPUT_2" in line for line in feedback.infos), feedback.infos
    before, valid_before, _, _ = dequantised_tile(tile)
    west, _, _, north = spec.bounds
    # brute-force nearest: the 2024 pixel containing each 2023 pixel centre
    xs = west + (np.arange(spec.width) + 0.5) * 10.0
    ys = north - (np.arange(spec.height) + 0.5) * 10.0
    cols = np.floor((xs - embedding.x0) / embedding.res).astype(int)
    rows = np.floor((embedding.y0 - ys) / embedding.res).astype(int)
    inside = (rows[:, None] >= 0) & (rows[:, None] < embedding.height) & (cols[None, :] >= 0) & (cols[None, :] < embedding.width)
    rr, cc = np.clip(rows, 0, embedding.height - 1), np.clip(cols, 0, embedding.width - 1)
    moved = embedding.values[:, rr[:, None], cc[None, :]]
    valid_after = inside & embedding.valid[rr[:, None], cc[None, :]]
    expected = brute_distance(before, valid_before, moved, valid_after)
    got, layer = read_band(output)
    assert (layer.width(), layer.height()) == (spec.width, spec.height)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert ok.sum() > 1000 and (~ok).sum() > 1000
    assert np.abs(got[ok] - expected[ok]).max() < TOLERANCE
    # and at patch centres, the fixture's own years
    for lon, lat in safe_patch_centres(embedding)[::25]:
        x, y = embedding.from_crs("EPSG:4326", lon, lat)
        col, row = int((x - west) // 10), int((north - y) // 10)
        if 0 <= row < spec.height and 0 <= col < spec.width and ok[row, col]:
            a, b = expected_values(lon, lat, 2023), expected_values(lon, lat, 2024)
            assert got[row, col] == pytest.approx(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=TOLERANCE)


@pytest.fixture(scope="module")
def tile_2023_31n(annual_dir, aef_specs):
    spec = next(s for s in aef_specs if s.year == 2023 and s.zone == "31N")
    return spec, annual_dir / spec.relative_path


def _other_bands(emb, folder):
    return write_raster(folder / "other.tif", emb.values[:32], emb.geotransform, projection_of(emb), "tessera")


def _far_away(emb, folder):
    gt = list(emb.geotransform)
    gt[0] += 200_000.0
    return write_raster(folder / "far.tif", emb.values, gt, projection_of(emb))


@pytest.mark.parametrize(
    "make, extra, words",
    [
        (_other_bands, {}, ["INPUT_2", "64 bands", "32", "same product"]),
        (_far_away, {}, ["overlap"]),
        (lambda emb, folder: emb.path, {"THRESHOLD": 2.5}, ["THRESHOLD", "below 2"]),
    ],
    ids=["other-bands", "no-overlap", "threshold-too-high"],
)
def test_change_bad_input_fails_in_one_line_and_writes_nothing(embedding, tmp_path, make, extra, words):
    second = make(embedding, tmp_path)
    out = tmp_path / "out"
    parameters = {"INPUT": embedding.path, "INPUT_2": second, **extra, "OUTPUT": str(out / "d.tif")}
    parameters["OUTPUT_MASK"] = str(out / "m.tif")
    with pytest.raises(QgsProcessingException) as caught:
        run("change", parameters)
    one_line_error(caught, *words)
    assert files_in(out) == []


def test_change_run_and_load_results_styles_both_layers(embedding, after, tmp_path):
    import processing

    project = QgsProject.instance()
    before = set(project.mapLayers())
    output, mask = tmp_path / "d.tif", tmp_path / "m.tif"
    try:
        processing.runAndLoadResults(
            "geoembed:change", {"INPUT": embedding.path, "INPUT_2": after[0], "OUTPUT": str(output), "OUTPUT_MASK": str(mask)}
        )
        loaded = {lyr.source(): lyr for lyr_id, lyr in project.mapLayers().items() if lyr_id not in before}
        assert set(loaded) == {str(output), str(mask)}
        distance = loaded[str(output)]
        assert distance.name() == "Change (cosine distance)"
        renderer = distance.renderer()
        assert isinstance(renderer, QgsSingleBandPseudoColorRenderer), type(renderer).__name__
        assert renderer.classificationMin() == 0.0 and 0 < renderer.classificationMax() <= 2.0
        assert loaded[str(mask)].name() == "Change mask"
        assert isinstance(loaded[str(mask)].renderer(), QgsPalettedRasterRenderer)
    finally:
        for layer_id in set(project.mapLayers()) - before:
            project.removeMapLayer(layer_id)


# === geoembed:compare ==========================================================================


@pytest.fixture(scope="module")
def noise(embedding, tmp_path_factory):
    """A 16-band 'product' of random vectors on the embedding's grid (no information about any class)."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(16, embedding.height, embedding.width)).astype(np.float32)
    values[:, ~embedding.valid] = NODATA
    names = [f"N{i:02d}" for i in range(16)]
    folder = tmp_path_factory.mktemp("noise")
    path = write_raster(folder / "noise.tif", values, embedding.geotransform, projection_of(embedding), "noise", names)
    gt = list(embedding.geotransform)
    gt[1], gt[5] = 20.0, -20.0
    coarse = rng.normal(size=(16, embedding.height // 2, embedding.width // 2)).astype(np.float32)
    coarse_path = write_raster(folder / "noise20.tif", coarse, gt, projection_of(embedding), "noise", names)
    return path, coarse_path


@pytest.fixture(scope="module")
def labelled(embedding):
    """(layer, [(lon, lat, class)]): safe patch centres labelled by the sign of A05 - A11 of their vector (a class the
    embedding separates), two points per patch."""
    rows, samples = [], []
    for lon, lat in safe_patch_centres(embedding)[::2]:
        vector = expected_values(lon, lat)
        label = "high" if vector[5] > vector[11] else "low"
        for dx in (0.0, 0.0003):
            rows.append(((lon + dx, lat), [label]))
            samples.append((lon + dx, lat, label))
    assert len({s[2] for s in samples}) == 2 and len(samples) > 80
    return point_layer("EPSG:4326", rows), samples


def compare_run(parameters, folder, feedback=None):
    outputs = {"OUTPUT": folder / "table.csv", "OUTPUT_REPORT": folder / "report.html"}
    results = run("compare", {**parameters, **{k: str(v) for k, v in outputs.items()}}, feedback)
    table = QgsVectorLayer(str(outputs["OUTPUT"]), "table", "ogr")
    assert table.isValid()
    rows = {f["input"]: {name: f[name] for name in table.fields().names()} for f in table.getFeatures()}
    return results, rows, outputs["OUTPUT_REPORT"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compared(embedding, noise, labelled, tmp_path_factory):
    feedback = RecordingFeedback()
    parameters = {"INPUT": embedding.path, "INPUT_2": noise[0], "TRAINING": labelled[0], "FIELD": "cls"}
    parameters["METHOD"] = "random_forest"
    return (*compare_run(parameters, tmp_path_factory.mktemp("compare"), feedback), feedback)


def test_compare_says_use_the_product_that_separates_the_classes(compared, labelled):
    results, rows, html, feedback = compared
    assert results["BEST"] == "INPUT"
    assert results["ACCURACY"] > 0.8 and results["ACCURACY_2"] < 0.7
    assert results["P_VALUE"] < 0.05
    answer = re.search(r"<p class='answer'>(.*?)</p>", html).group(1)
    assert answer.startswith("Use aef 2024 (embeddings.tif) here"), answer
    assert any(line.startswith("Use aef 2024") for line in feedback.infos)


def test_compare_table_has_one_row_per_product(compared, labelled):
    results, rows, _, _ = compared
    assert set(rows) == {"INPUT", "INPUT_2"}
    first, second = rows["INPUT"], rows["INPUT_2"]
    assert (first["product"], int(first["dims"]), first["resampling"]) == ("aef", 64, "none")
    assert (second["product"], int(second["dims"]), second["resampling"]) == ("noise", 16, "none")
    assert float(first["accuracy"]) == pytest.approx(results["ACCURACY"])
    assert float(second["macro_f1"]) == pytest.approx(results["MACRO_F1_2"])
    assert (int(first["best"]), int(second["best"])) == (1, 0)
    assert int(first["samples"]) == int(second["samples"]) == results["SAMPLES"] == len(labelled[1])


def test_compare_report_shows_both_products_side_by_side(compared, labelled):
    results, _, html, _ = compared
    assert "aef 2024 (embeddings.tif)" in html and "noise (noise.tif)" in html
    accuracy = re.search(r"Overall accuracy</td>(.*?)</tr>", html).group(1)
    assert re.findall(r">([0-9.]+) %<", accuracy) == [f"{100 * results['ACCURACY']:.1f}", f"{100 * results['ACCURACY_2']:.1f}"]
    macro = re.search(r"Macro F1</td>(.*?)</tr>", html).group(1)
    assert re.findall(r">([0-9.]+)<", macro) == [f"{results['MACRO_F1']:.3f}", f"{results['MACRO_F1_2']:.3f}"]
    for name in ("high", "low"):
        assert f"F1 {name}" in html
        count = sum(1 for s in labelled[1] if s[2] == name)
        assert f"<td class='l'>{name}</td><td>{count}</td>" in html
    assert "the same folds for both products" in html


def test_compare_swapping_the_products_swaps_the_results(embedding, noise, labelled, compared, tmp_path):
    """Same samples, same folds: INPUT and INPUT_2 exchanged give exactly the exchanged scores."""
    results, _, _, _ = compared
    parameters = {"INPUT": noise[0], "INPUT_2": embedding.path, "TRAINING": labelled[0], "FIELD": "cls"}
    parameters["METHOD"] = "random_forest"
    swapped, rows, _ = compare_run(parameters, tmp_path)
    assert swapped["BEST"] == "INPUT_2"
    assert (swapped["ACCURACY"], swapped["ACCURACY_2"]) == (results["ACCURACY_2"], results["ACCURACY"])
    assert (swapped["MACRO_F1"], swapped["MACRO_F1_2"]) == (results["MACRO_F1_2"], results["MACRO_F1"])
    assert swapped["P_VALUE"] == pytest.approx(results["P_VALUE"])


def test_compare_takes_a_coarser_product_with_nearest(embedding, noise, labelled, tmp_path):
    feedback = RecordingFeedback()
    parameters = {"INPUT": embedding.path, "INPUT_2": noise[1], "TRAINING": labelled[0], "FIELD": "cls", "METHOD": "knn"}
    results, rows, _ = compare_run(parameters, tmp_path, feedback)
    assert (rows["INPUT"]["resampling"], rows["INPUT_2"]["resampling"]) == ("none", "nearest")
    assert any(line.startswith("INPUT_2") and "nearest" in line for line in feedback.infos), feedback.infos
    assert results["SAMPLES"] == len(labelled[1])


def test_compare_at_a_coarser_resolution_aggregates_both(embedding, noise, labelled, tmp_path):
    feedback = RecordingFeedback()
    parameters = {
        "INPUT": embedding.path,
        "INPUT_2": noise[0],
        "TRAINING": labelled[0],
        "FIELD": "cls",
        "METHOD": "nearest_centroid",
        "RESOLUTION": 20,
    }
    results, rows, _ = compare_run(parameters, tmp_path, feedback)
    assert rows["INPUT"]["resampling"] == rows["INPUT_2"]["resampling"] == "aggregate"
    assert sum("aggregated" in line for line in feedback.infos) == 2, feedback.infos
    assert any("pixels of 20 in" in line for line in feedback.infos)
    assert results["SAMPLES"] == len(labelled[1])


def _bad_compare(kind, embedding, noise, labelled, folder):
    layer = labelled[0]
    if kind == "no-such-field":
        return {"INPUT_2": noise[0], "TRAINING": layer, "FIELD": "nope"}, ["nope"]
    if kind == "single-class":
        one = point_layer("EPSG:4326", [((s[0], s[1]), ["forest"]) for s in labelled[1][:10]])
        return {"INPUT_2": noise[0], "TRAINING": one, "FIELD": "cls"}, ["single class", "forest"]
    if kind == "no-overlap":
        gt = list(embedding.geotransform)
        gt[0] += 200_000.0
        far = write_raster(folder / "far.tif", embedding.values[:8], gt, projection_of(embedding), "noise")
        return {"INPUT_2": far, "TRAINING": layer, "FIELD": "cls"}, ["INPUT_2", "overlap"]
    far = outside_lonlat(embedding)
    rows = [((far[0] - 0.001 * i, far[1]), ["ab"[i % 2]]) for i in range(6)]
    return {"INPUT_2": noise[0], "TRAINING": point_layer("EPSG:4326", rows), "FIELD": "cls"}, ["TRAINING", "overlap"]


@pytest.mark.parametrize("kind", ["no-such-field", "single-class", "no-overlap", "training-outside"])
def test_compare_bad_input_fails_in_one_line_and_writes_nothing(embedding, noise, labelled, tmp_path, kind):
    extra, words = _bad_compare(kind, embedding, noise, labelled, tmp_path)
    out = tmp_path / "out"
    parameters = {
        "INPUT": embedding.path,
        **extra,
        "METHOD": "nearest_centroid",
        "OUTPUT": str(out / "table.csv"),
        "OUTPUT_REPORT": str(out / "report.html"),
    }
    with pytest.raises(QgsProcessingException) as caught:
        run("compare", parameters)
    one_line_error(caught, *words)
    assert files_in(out) == []


# === geoembed:intrinsicdim =====================================================================


@pytest.fixture(scope="module")
def subspace(embedding, tmp_path_factory):
    """A 64-band raster whose vectors lie in a random 3-D subspace (Gaussian coordinates), with nodata holes."""
    rng = np.random.default_rng(21)
    height, width = 90, 80
    basis = np.linalg.qr(rng.normal(size=(64, 3)))[0]
    coords = rng.normal(size=(height * width, 3))
    values = (coords @ basis.T + 0.1).T.reshape(64, height, width)
    valid = rng.random((height, width)) > 0.1
    values[:, ~valid] = NODATA
    gt = (embedding.x0, 10.0, 0.0, embedding.y0, 0.0, -10.0)
    path = write_raster(tmp_path_factory.mktemp("subspace") / "subspace.tif", values, gt, projection_of(embedding))
    return path, values.astype(np.float32), valid


def test_intrinsicdim_of_a_3d_subspace(subspace, tmp_path):
    path, values, valid = subspace
    outputs = {"OUTPUT": tmp_path / "spectrum.csv", "OUTPUT_PLOT": tmp_path / "plot.html"}
    feedback = RecordingFeedback()
    results = run("intrinsicdim", {"INPUT": path, "SAMPLE_SIZE": 20000, **{k: str(v) for k, v in outputs.items()}}, feedback)
    assert results["SAMPLES"] == int(valid.sum()), "a sample larger than the valid pixels takes them all"
    assert results["DUPLICATES"] == 0
    assert results["TWO_NN_DIM"] == pytest.approx(3.0, abs=0.35)
    assert results["TWO_NN_MLE"] == pytest.approx(3.0, abs=0.35)
    # the spectrum of all valid pixels, from numpy's SVD
    pixels = values[:, valid].T.astype(np.float64)
    singular = np.linalg.svd(pixels - pixels.mean(axis=0), compute_uv=False)
    ratios = singular**2 / (singular**2).sum()
    cumulative = np.cumsum(ratios)
    for level, key in ((0.90, "PCA_DIM_90"), (0.95, "PCA_DIM_95"), (0.99, "PCA_DIM_99")):
        assert results[key] == int(np.argmax(cumulative >= level)) + 1, key
    assert results["PCA_DIM_99"] <= 3
    table = QgsVectorLayer(str(outputs["OUTPUT"]), "t", "ogr")
    assert table.isValid() and table.featureCount() == 64
    assert table.fields().names() == ["component", "explained_variance_ratio", "cumulative"]
    rows = sorted(
        (int(f["component"]), float(f["explained_variance_ratio"]), float(f["cumulative"])) for f in table.getFeatures()
    )
    assert [r[0] for r in rows] == list(range(1, 65))
    assert np.allclose([r[1] for r in rows], ratios, atol=1e-9)
    assert np.allclose([r[2] for r in rows], cumulative, atol=1e-9)
    html = outputs["OUTPUT_PLOT"].read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and f"{results['TWO_NN_DIM']:.2f}" in html
    assert any("TwoNN intrinsic dimension" in line for line in feedback.infos)


def test_intrinsicdim_drops_duplicates_of_a_quantised_product(tile_2024_31n, tmp_path):
    """The raw AEF tile: constant patches of int8 codes, so most vectors repeat; all valid pixels are sampled."""
    _, tile = tile_2024_31n
    values, valid, _, _ = dequantised_tile(tile)
    feedback = RecordingFeedback()
    results = run("intrinsicdim", {"INPUT": str(tile), "SAMPLE_SIZE": 100000, "OUTPUT": "TEMPORARY_OUTPUT"}, feedback)
    distinct = len(np.unique(values[:, valid].T, axis=0))
    assert results["SAMPLES"] == int(valid.sum())
    assert results["DUPLICATES"] == int(valid.sum()) - distinct > 0
    assert any(f"{results['DUPLICATES']} of {results['SAMPLES']} sampled vectors duplicate" in line for line in feedback.infos)
    assert 1.0 < results["TWO_NN_DIM"] < 64.0


def test_intrinsicdim_with_too_few_valid_pixels_fails_in_one_line(embedding, tmp_path):
    values = np.full((64, 10, 10), NODATA, dtype=np.float32)
    values[:, 0, :5] = 0.1
    path = write_raster(tmp_path / "almost_empty.tif", values, embedding.geotransform, projection_of(embedding))
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as caught:
        run("intrinsicdim", {"INPUT": path, "OUTPUT": str(out / "t.csv"), "OUTPUT_PLOT": str(out / "p.html")})
    one_line_error(caught, "only 5 valid pixels")
    assert files_in(out) == []


# === cancelling ==================================================================================


def _cancel_cases(embedding, after, noise, labelled, subspace, out):
    return {
        "change": {"INPUT": embedding.path, "INPUT_2": after[0], "OUTPUT": str(out / "d.tif"), "OUTPUT_MASK": str(out / "m.tif")},
        "compare": {
            "INPUT": embedding.path,
            "INPUT_2": noise[0],
            "TRAINING": labelled[0],
            "FIELD": "cls",
            "METHOD": "nearest_centroid",
            "OUTPUT": str(out / "t.csv"),
            "OUTPUT_REPORT": str(out / "r.html"),
        },
        "intrinsicdim": {"INPUT": subspace[0], "OUTPUT": str(out / "t.csv"), "OUTPUT_PLOT": str(out / "p.html")},
    }


@pytest.mark.parametrize("name", ["change", "compare", "intrinsicdim"])
@pytest.mark.parametrize("when", ["before", "during"])
def test_cancel_leaves_nothing_and_says_cancelled(embedding, after, noise, labelled, subspace, tmp_path, name, when):
    out = tmp_path / "out"
    out.mkdir()
    parameters = _cancel_cases(embedding, after, noise, labelled, subspace, out)[name]
    feedback = QgsProcessingFeedback()
    progress = []
    if when == "before":
        feedback.cancel()
    else:

        def on_progress(value):
            progress.append(value)
            if 0 < value < 100:
                feedback.cancel()

        feedback.progressChanged.connect(on_progress)
    with pytest.raises(QgsProcessingException) as caught:
        run_cpp(name, parameters, feedback)
    if when == "during":
        assert any(0 < value < 100 for value in progress), progress
    one_line_error(caught, "cancel")
    assert files_in(out) == [], "outputs or scratch files left behind"
