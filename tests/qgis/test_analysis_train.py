"""geoembed:train and geoembed:classify through Processing: class maps, confidence, model files, reports, refusals.

Training features sit inside the fixture's value patches (constant vectors over 0.002 degrees), so what
each sample must read is known; expectations come from the embedding GeoTIFF read with GDAL, and the
raw AEF tile de-quantised here with the published formula ((q / 127.5) ** 2) * sign(q).
"""

import re

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsPalettedRasterRenderer, QgsProcessingException, QgsProject, QgsRasterLayer

from tests.fixtures.rasters import write_not_aef_tiff

from .test_analysis_algorithms import (
    BANDS,
    EXTENT,
    NODATA,
    files_in,
    in_crs,
    one_line_error,
    outside_lonlat,
    point_layer,
    polygon_layer,
    read_embedding,
    run,
    safe_patch_centres,
    transformer,
)

TEXT_CLASSES = ["water", "forest", "urban"]  # natural order: forest, urban, water
INT_CLASSES = [20, 3, 10]  # natural order: 3, 10, 20 (not "10", "20", "3")
OFFSETS = [(0.0, 0.0), (0.0004, 0.0003), (-0.0004, -0.0003), (0.0004, -0.0003)]
HALF_BOX = 0.0005  # degrees: polygons well inside their 0.002-degree patch


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("train-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    return read_embedding(output)


@pytest.fixture(scope="module")
def patches(embedding):
    """Nine patch centres spread over the layer; class k owns patches k, k + 3, k + 6."""
    centres = safe_patch_centres(embedding, margin=6)
    assert len(centres) > 30
    return centres[:: len(centres) // 9][:9]


def natural_names(kind):
    return ["forest", "urban", "water"] if kind == "text" else ["3", "10", "20"]


def labels_of(kind):
    return TEXT_CLASSES if kind == "text" else INT_CLASSES


def training_points(embedding, patches, kind):
    """(layer, [(lon, lat, class name)]): 2, 3 and 4 points per patch for classes 0, 1, 2, plus one unlabelled point."""
    labels = labels_of(kind)
    samples = []
    for index, (lon, lat) in enumerate(patches):
        k = index % 3
        for dx, dy in OFFSETS[: k + 2]:
            samples.append((lon + dx, lat + dy, labels[k]))
    rows = [((lon, lat), [label]) for lon, lat, label in samples]
    rows.append(((patches[0][0] + 0.0002, patches[0][1]), [None]))  # NULL class: ignored
    field = "cls:string" if kind == "text" else "cls:integer"
    return point_layer("EPSG:4326", rows, field), [(lon, lat, str(label)) for lon, lat, label in samples]


def training_polygons(embedding, patches, kind):
    """(layer, {class name: number of valid pixel centres inside its polygons}), two polygons per class."""
    labels = labels_of(kind)
    rows, counts = [], {}
    for index, (lon, lat) in enumerate(patches[:6]):
        ring = [
            (lon - HALF_BOX, lat - HALF_BOX),
            (lon + HALF_BOX, lat - HALF_BOX),
            (lon + HALF_BOX, lat + HALF_BOX),
            (lon - HALF_BOX, lat + HALF_BOX),
            (lon - HALF_BOX, lat - HALF_BOX),
        ]
        label = labels[index % 3]
        rows.append((ring, [label]))
        counts[str(label)] = counts.get(str(label), 0) + pixels_inside(embedding, ring)
    field = "cls:string" if kind == "text" else "cls:integer"
    return polygon_layer("EPSG:4326", rows, field), counts


def pixels_inside(emb, ring_lonlat):
    """Valid pixel centres inside a lon/lat ring (vertices transformed to the raster CRS, even-odd rule)."""
    xs, ys = emb.from_crs("EPSG:4326", [p[0] for p in ring_lonlat], [p[1] for p in ring_lonlat])
    cx = emb.x0 + (np.arange(emb.width) + 0.5) * emb.res
    cy = emb.y0 - (np.arange(emb.height) + 0.5) * emb.res
    gx, gy = np.meshgrid(cx, cy)
    inside = np.zeros(gx.shape, dtype=bool)
    for ax, ay, bx, by in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
        if ay != by:
            inside ^= ((ay > gy) != (by > gy)) & (gx < ax + (gy - ay) * (bx - ax) / (by - ay))
    return int((inside & emb.valid).sum())


CASES = {
    "points-text-random_forest": ("points", "text", "random_forest"),
    "points-text-logistic_regression": ("points", "text", "logistic_regression"),
    "points-text-knn": ("points", "text", "knn"),
    "points-text-nearest_centroid": ("points", "text", "nearest_centroid"),
    "points-int-knn": ("points", "int", "knn"),
    "polygons-int-random_forest": ("polygons", "int", "random_forest"),
    "polygons-text-nearest_centroid": ("polygons", "text", "nearest_centroid"),
}


@pytest.fixture(scope="module")
def trained(embedding, patches, tmp_path_factory):
    """trained(case) -> dict of the run's outputs and expectations; each case runs once per module."""
    cache = {}

    def get(case):
        if case not in cache:
            geometry, kind, method = CASES[case]
            folder = tmp_path_factory.mktemp(case)
            if geometry == "points":
                layer, samples = training_points(embedding, patches, kind)
                counts = {name: sum(1 for s in samples if s[2] == name) for name in natural_names(kind)}
            else:
                layer, counts = training_polygons(embedding, patches, kind)
                samples = None
            outputs = {
                "OUTPUT": folder / "classes.tif",
                "OUTPUT_CONFIDENCE": folder / "confidence.tif",
                "OUTPUT_MODEL": folder / "model.npz",
                "OUTPUT_REPORT": folder / "report.html",
            }
            parameters = {"INPUT": embedding.path, "TRAINING": layer, "FIELD": "cls", "METHOD": method}
            results = run("train", {**parameters, **{k: str(v) for k, v in outputs.items()}})
            cache[case] = {
                "results": results,
                "outputs": outputs,
                "names": natural_names(kind),
                "counts": counts,
                "samples": samples,
                "method": method,
                "folder": folder,
            }
        return cache[case]

    return get


# === geoembed:train ============================================================================


@pytest.mark.parametrize("case", list(CASES))
def test_train_writes_a_paletted_byte_class_raster(embedding, trained, case):
    run_ = trained(case)
    names = run_["names"]
    assert {k: run_["results"][k] for k in run_["outputs"]} == {k: str(v) for k, v in run_["outputs"].items()}
    dataset = gdal.Open(str(run_["outputs"]["OUTPUT"]))
    band = dataset.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte
    assert dataset.GetGeoTransform() == pytest.approx(embedding.geotransform)
    assert (dataset.RasterXSize, dataset.RasterYSize) == (embedding.width, embedding.height)
    assert band.GetNoDataValue() == 0
    classes = band.ReadAsArray()
    assert (classes[~embedding.valid] == 0).all(), "nodata pixels must be 0"
    assert ((classes[embedding.valid] >= 1) & (classes[embedding.valid] <= len(names))).all(), "valid pixels must be 1..n"
    assert set(np.unique(classes[embedding.valid])) == set(range(1, len(names) + 1)), "every class should appear"
    table = band.GetRasterColorTable()  # read first: GDAL 3.6 only loads the .aux.xml categories after it
    assert table is not None and table.GetCount() >= len(names) + 1
    assert table.GetColorEntry(0)[3] == 0, "nodata must be transparent"
    colours = [table.GetColorEntry(i) for i in range(1, len(names) + 1)]
    assert len(set(colours)) == len(names) and all(c[3] == 255 for c in colours)
    assert band.GetCategoryNames() == ["nodata", *names]
    assert dataset.GetMetadataItem("GEOEMBED_CLASSES") == "|".join(names)


@pytest.mark.parametrize("case", list(CASES))
def test_train_layer_is_paletted_in_qgis(trained, case):
    run_ = trained(case)
    layer = QgsRasterLayer(str(run_["outputs"]["OUTPUT"]), "classes", "gdal")
    assert layer.isValid()
    assert layer.renderer().type() == "paletted"
    labels = {int(c.value): c.label for c in layer.renderer().classes()}
    assert [labels[i] for i in range(1, len(run_["names"]) + 1)] == run_["names"]


def test_train_legend_lists_only_the_classes(trained):
    """The paletted legend QGIS builds from the file should list nodata and the n classes, not 256 entries."""
    run_ = trained("points-text-random_forest")
    layer = QgsRasterLayer(str(run_["outputs"]["OUTPUT"]), "classes", "gdal")
    values = sorted(int(c.value) for c in layer.renderer().classes())
    assert set(values) <= set(range(len(run_["names"]) + 1)), f"{len(values)} legend entries: {values[:6]}..."


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("points")])
def test_train_map_agrees_with_the_training_points(embedding, trained, case):
    run_ = trained(case)
    classes = gdal.Open(str(run_["outputs"]["OUTPUT"])).ReadAsArray()
    names = run_["names"]
    hits = 0
    for lon, lat, name in run_["samples"]:
        row, col = embedding.pixel_of_lonlat(lon, lat)
        hits += names[classes[row, col] - 1] == name
    share = hits / len(run_["samples"])
    assert share >= (1.0 if run_["method"] in ("random_forest", "knn") else 0.75), f"{share:.2f} of training points"


@pytest.mark.parametrize("case", list(CASES))
def test_train_confidence_is_in_0_1(embedding, trained, case):
    dataset = gdal.Open(str(trained(case)["outputs"]["OUTPUT_CONFIDENCE"]))
    band = dataset.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Float32
    values = band.ReadAsArray()
    assert (values[~embedding.valid] == band.GetNoDataValue()).all()
    inside = values[embedding.valid]
    assert (inside > 0).all() and (inside <= 1).all(), (inside.min(), inside.max())


@pytest.mark.parametrize("case", list(CASES))
def test_train_model_file_records_what_is_needed(trained, case):
    from geoembed.analysis.classify import load_model

    run_ = trained(case)
    model = load_model(str(run_["outputs"]["OUTPUT_MODEL"]))
    assert model.class_names == run_["names"]
    assert tuple(model.band_names) == tuple(BANDS)
    assert model.product == "aef"
    assert model.method == run_["method"]
    for key in ("geoembed", "numpy", "python", "sklearn"):
        assert key in model.versions, key
    if run_["method"] != "nearest_centroid":
        assert model.versions["sklearn"]
    assert model.report["counts"] == [run_["counts"][name] for name in run_["names"]]


def _table_rows(html, heading):
    section = html.split(heading, 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", section, re.DOTALL)


@pytest.mark.parametrize("case", list(CASES))
def test_train_report_has_accuracy_confusion_f1_and_counts(trained, case):
    run_ = trained(case)
    html = run_["outputs"]["OUTPUT_REPORT"].read_text(encoding="utf-8")
    names, counts = run_["names"], run_["counts"]
    accuracy = re.search(r"accuracy: ([0-9.]+) %", html, re.IGNORECASE)
    assert accuracy, "no accuracy in the report"
    assert "Confusion matrix" in html and "F1" in html and run_["method"] in html
    matrix = []
    for row in _table_rows(html, "Confusion matrix")[1:]:
        label = re.search(r"<th[^>]*>(.*?)</th>", row).group(1)
        matrix.append((label, [int(v) for v in re.findall(r"<td[^>]*>(\d+)</td>", row)]))
    assert [label for label, _ in matrix] == names
    assert [sum(cells) for _, cells in matrix] == [counts[n] for n in names], "confusion rows must sum to the samples"
    diagonal = sum(cells[i] for i, (_, cells) in enumerate(matrix))
    assert float(accuracy.group(1)) == pytest.approx(100 * diagonal / sum(counts.values()), abs=0.05)
    per_class = {}
    for row in _table_rows(html, "Per class")[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        per_class[cells[0]] = (int(cells[1]), [float(v) for v in cells[2:]])
    assert {name: per_class[name][0] for name in names} == counts
    assert all(len(values) == 3 and all(0 <= v <= 1 for v in values) for _, values in per_class.values())
    assert f"Total samples: {sum(counts.values())}." in html


def test_train_run_and_load_results_names_and_palettes_the_layer(embedding, patches, tmp_path):
    import processing

    project = QgsProject.instance()
    before = set(project.mapLayers())
    layer, _ = training_points(embedding, patches, "text")
    output = tmp_path / "classes.tif"
    try:
        processing.runAndLoadResults(
            "geoembed:train",
            {"INPUT": embedding.path, "TRAINING": layer, "FIELD": "cls", "METHOD": "nearest_centroid", "OUTPUT": str(output)},
        )
        loaded = [lyr for lyr_id, lyr in project.mapLayers().items() if lyr_id not in before]
        assert [lyr.source() for lyr in loaded] == [str(output)]
        assert loaded[0].name() == "Classes"
        assert isinstance(loaded[0].renderer(), QgsPalettedRasterRenderer)
        legend = [(int(c.value), c.label) for c in loaded[0].renderer().classes()]
        assert legend == [(1, "forest"), (2, "urban"), (3, "water")]  # not the 256 entries of a Byte colour table
    finally:
        for layer_id in set(project.mapLayers()) - before:
            project.removeMapLayer(layer_id)


# --- bad training input ------------------------------------------------------------------------


def _bad_training(kind, embedding, patches):
    if kind == "empty":
        return point_layer("EPSG:4326", []), "cls", ["TRAINING", "no labelled"]
    if kind == "single-class":
        return point_layer("EPSG:4326", [(p, ["forest"]) for p in patches]), "cls", ["single class", "forest"]
    if kind == "no-such-field":
        return point_layer("EPSG:4326", [(p, ["ab"[i % 2]]) for i, p in enumerate(patches)]), "nope", ["nope"]
    far = outside_lonlat(embedding)
    rows = [((far[0] - 0.001 * i, far[1]), ["ab"[i % 2]]) for i in range(6)]
    return point_layer("EPSG:4326", rows), "cls", ["TRAINING", "overlap"]


@pytest.mark.parametrize("kind", ["empty", "single-class", "no-such-field", "outside"])
def test_train_bad_input_fails_in_one_line_and_writes_nothing(embedding, patches, tmp_path, kind):
    layer, field, words = _bad_training(kind, embedding, patches)
    parameters = {
        "INPUT": embedding.path,
        "TRAINING": layer,
        "FIELD": field,
        "OUTPUT": str(tmp_path / "classes.tif"),
        "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif"),
        "OUTPUT_MODEL": str(tmp_path / "model.npz"),
        "OUTPUT_REPORT": str(tmp_path / "report.html"),
    }
    with pytest.raises(QgsProcessingException) as caught:
        run("train", parameters)
    one_line_error(caught, *words)
    assert files_in(tmp_path) == []


def test_train_polygons_in_another_crs_give_the_same_counts(embedding, patches, tmp_path):
    """Polygons in EPSG:3857 are transformed to the raster's CRS before their pixels are taken."""
    _, counts = training_polygons(embedding, patches, "text")
    rows = []
    for index, (lon, lat) in enumerate(patches[:6]):
        ring = [
            (lon - HALF_BOX, lat - HALF_BOX),
            (lon + HALF_BOX, lat - HALF_BOX),
            (lon + HALF_BOX, lat + HALF_BOX),
            (lon - HALF_BOX, lat + HALF_BOX),
            (lon - HALF_BOX, lat - HALF_BOX),
        ]
        rows.append((in_crs(embedding, "EPSG:3857", ring), [TEXT_CLASSES[index % 3]]))
    layer = polygon_layer("EPSG:3857", rows)
    model = tmp_path / "model.npz"
    run(
        "train",
        {
            "INPUT": embedding.path,
            "TRAINING": layer,
            "FIELD": "cls",
            "METHOD": "nearest_centroid",
            "OUTPUT": str(tmp_path / "c.tif"),
            "OUTPUT_MODEL": str(model),
        },
    )
    from geoembed.analysis.classify import load_model

    assert load_model(str(model)).report["counts"] == [counts[name] for name in natural_names("text")]


# === geoembed:classify =========================================================================


def dequantised_tile(path):
    """(values (64, rows, cols) float32 north-up, valid) of a raw AEF tile, de-quantised here."""
    dataset = gdal.Open(str(path))
    codes = dataset.ReadAsArray().astype(np.int8)
    gt = dataset.GetGeoTransform()
    if gt[5] > 0:  # stored south-up
        codes = codes[:, ::-1, :]
    valid = ~(codes == -128).any(axis=0)
    q = codes.astype(np.float64)
    values = ((q / 127.5) ** 2 * np.sign(q)).astype(np.float32)
    return values, valid, gt, dataset.RasterYSize


def test_classify_applies_a_saved_model_to_a_raw_aef_tile(trained, tile_2024_31n, tmp_path):
    from geoembed.analysis.classify import load_model

    run_ = trained("points-text-random_forest")
    spec, tile = tile_2024_31n
    output, confidence = tmp_path / "classes.tif", tmp_path / "confidence.tif"
    model_path = str(run_["outputs"]["OUTPUT_MODEL"])
    parameters = {"INPUT": str(tile), "MODEL": model_path, "OUTPUT": str(output), "OUTPUT_CONFIDENCE": str(confidence)}
    results = run("classify", parameters)
    assert results == {"OUTPUT": str(output), "OUTPUT_CONFIDENCE": str(confidence)}
    values, valid, _, height = dequantised_tile(tile)
    west, south, east, north = spec.bounds
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == pytest.approx((west, 10.0, 0.0, north, 0.0, -10.0))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (spec.width, spec.height)
    srs = osr.SpatialReference(wkt=dataset.GetProjection())
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == str(spec.epsg)
    band = dataset.GetRasterBand(1)
    got = band.ReadAsArray()
    assert band.GetRasterColorTable() is not None
    assert band.GetCategoryNames() == ["nodata", *run_["names"]]
    model = load_model(model_path)
    probabilities = model.estimator.predict_proba(values[:, valid].T)
    expected = np.zeros(valid.shape, dtype=np.uint8)
    expected[valid] = np.asarray(model.estimator.classes_)[probabilities.argmax(axis=1)] + 1
    assert not valid.all() and (got[~valid] == 0).all(), "the tile's nodata box must be 0"
    assert np.array_equal(got, expected)
    conf = gdal.Open(str(confidence)).ReadAsArray()
    assert np.allclose(conf[valid], probabilities.max(axis=1), atol=1e-6)


@pytest.fixture(scope="module")
def other_rasters(embedding, patches, tmp_path_factory):
    """Rasters classify must refuse: 3 plain Float32 bands, a 1-band heatmap, 64 bands of another product."""
    folder = tmp_path_factory.mktemp("other-rasters")
    plain = write_not_aef_tiff(folder / "three_bands.tif")
    heat = folder / "heat.tif"
    run(
        "similarity",
        {"INPUT": embedding.path, "QUERY": point_layer("EPSG:4326", [(patches[0], ["q"])]), "K": 0, "OUTPUT": str(heat)},
    )
    other = folder / "other_product.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(other), 16, 16, 64, gdal.GDT_Float32)
    dataset.SetGeoTransform((embedding.x0, 10.0, 0.0, embedding.y0, 0.0, -10.0))
    dataset.SetProjection(gdal.Open(embedding.path).GetProjection())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "other"})
    rng = np.random.default_rng(1)
    for index in range(64):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(f"E{index:02d}")
        band.SetNoDataValue(NODATA)
        band.WriteArray(rng.normal(size=(16, 16)).astype(np.float32))
    dataset = None
    return {
        "three-band-float32": (plain, []),
        "similarity-heatmap": (heat, ["bands", "same product"]),
        "other-band-names": (other, ["bands", "same product"]),
    }


@pytest.mark.parametrize("kind", ["three-band-float32", "similarity-heatmap", "other-band-names"])
def test_classify_refuses_rasters_with_other_bands(trained, other_rasters, tmp_path, kind):
    raster, words = other_rasters[kind]
    model = trained("points-text-random_forest")["outputs"]["OUTPUT_MODEL"]
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as caught:
        run("classify", {"INPUT": str(raster), "MODEL": str(model), "OUTPUT": str(out / "classes.tif")})
    one_line_error(caught, *words)
    assert files_in(out) == []


def test_classify_refuses_a_file_that_is_not_a_model(embedding, tmp_path):
    model = tmp_path / "model.npz"
    model.write_bytes(b"not a pickle at all")
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as caught:
        run("classify", {"INPUT": embedding.path, "MODEL": str(model), "OUTPUT": str(out / "classes.tif")})
    one_line_error(caught, "not a GeoEmbed model")
    assert files_in(out) == []


def test_transformer_helper_is_xy_ordered():
    """Guard for the expectations above: lon/lat in, x/y out."""
    x, y = transformer("EPSG:4326", "EPSG:32631").transform(3.0, 0.0)
    assert x == pytest.approx(500000.0) and y == pytest.approx(0.0, abs=1e-6)
