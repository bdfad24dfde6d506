"""geoembed:pca and geoembed:cluster through Processing, read back through QGIS's raster provider.

The embedding layer is made once per module by geoembed:load from the session's AEF mirror (a 10 m UTM 31N
grid with a nodata box). Expectations are computed here from that GeoTIFF read with GDAL: the PCA by numpy
SVD over every valid pixel (SAMPLE_SIZE above the pixel count makes the sample the whole raster), the
colours by the documented stretch formula, the clusters by brute-force nearest centroid of the unit vectors.
"""

import json

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import (
    Qgis,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .test_analysis_algorithms import (
    BANDS,
    EXTENT,
    NODATA,
    RecordingFeedback,
    files_in,
    one_line_error,
    read_embedding,
    run,
    run_cpp,
)
from .test_analysis_train import dequantised_tile

ALL_PIXELS = 10_000_000  # SAMPLE_SIZE above the pixel count: the sample is every valid pixel


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("pca-embedding") / "embeddings.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    emb = read_embedding(output)
    assert emb.valid.any() and not emb.valid.all()
    return emb


# --- independent expectations -------------------------------------------------------------------


def svd_pca(vectors):
    """(mean, axes (3, dims)) of (n, dims) vectors by SVD, each axis signed so its largest loading is positive."""
    vectors = np.asarray(vectors, dtype=np.float64)
    mean = vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
    axes = vt[:3].copy()
    for axis in axes:
        if axis[np.abs(axis).argmax()] < 0:
            axis *= -1
    return mean, axes


def stretched(vectors, mean, axes, lows, highs):
    """(3, n) uint8: 1 + round(254 * clip((projection - low) / (high - low), 0, 1))."""
    projected = (np.asarray(vectors, dtype=np.float64) - mean) @ np.asarray(axes).T
    scaled = np.clip((projected - lows) / (np.asarray(highs) - lows), 0.0, 1.0)
    return np.round(1 + 254 * scaled).astype(np.uint8).T


def unit_rows(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def qgis_bands(path):
    """(array (bands, rows, cols) uint8 read through QGIS's raster provider, layer)."""
    layer = QgsRasterLayer(str(path), "read", "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    provider = layer.dataProvider()
    out = []
    for band in range(1, layer.bandCount() + 1):
        assert provider.dataType(band) == Qgis.DataType.Byte, f"band {band} is not Byte"
        block = provider.block(band, layer.extent(), layer.width(), layer.height())
        assert block.isValid() and block.dataType() == Qgis.DataType.Byte
        out.append(np.frombuffer(bytes(block.data()), dtype=np.uint8).reshape(layer.height(), layer.width()))
    return np.stack(out), layer


def write_embedding_tiff(path, values, x0, y0, epsg, product="aef", names=BANDS):
    """A Float32 embedding GeoTIFF as geoembed:load writes it (north-up, band names, nodata, GEOEMBED_PRODUCT)."""
    bands, rows, cols = values.shape
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Float32, ["TILED=YES"])
    dataset.SetGeoTransform((x0, 10.0, 0.0, y0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": product})
    for index in range(bands):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(names[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index].astype(np.float32))
    dataset = None
    return str(path)


# === geoembed:pca ================================================================================


@pytest.fixture(scope="module")
def pca_run(embedding, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pca")
    outputs = {"OUTPUT": folder / "pca.tif", "OUTPUT_MODEL": folder / "pca.json"}
    feedback = RecordingFeedback()
    parameters = {"INPUT": embedding.path, "SAMPLE_SIZE": ALL_PIXELS, **{k: str(v) for k, v in outputs.items()}}
    results = run("pca", parameters, feedback)
    return results, outputs, feedback, folder


def test_pca_writes_three_byte_bands_with_nodata_0(embedding, pca_run):
    results, outputs, _, folder = pca_run
    assert results == {k: str(v) for k, v in outputs.items()}
    assert [name for name in files_in(folder) if not name.endswith(".aux.xml")] == ["pca.json", "pca.qml", "pca.tif"]
    rgb, layer = qgis_bands(outputs["OUTPUT"])
    provider = layer.dataProvider()
    assert layer.bandCount() == 3 and rgb.shape == (3, embedding.height, embedding.width)
    for band in (1, 2, 3):
        assert provider.sourceHasNoDataValue(band) and provider.sourceNoDataValue(band) == 0
    assert (rgb[:, ~embedding.valid] == 0).all(), "nodata must be 0 in every band"
    assert (rgb[:, embedding.valid] >= 1).all(), "valid pixels must be 1..255"
    assert rgb.max() == 255
    dataset = gdal.Open(str(outputs["OUTPUT"]))
    assert dataset.GetGeoTransform() == pytest.approx(embedding.geotransform)
    names = [gdal.GetColorInterpretationName(dataset.GetRasterBand(i).GetColorInterpretation()) for i in (1, 2, 3)]
    assert names == ["Red", "Green", "Blue"]


def test_pca_layer_is_rgb_without_stretch_in_qgis(pca_run):
    _, outputs, _, _ = pca_run
    layer = QgsRasterLayer(str(outputs["OUTPUT"]), "pca", "gdal")
    renderer = layer.renderer()
    assert renderer.type() == "multibandcolor"
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 3)
    assert renderer.redContrastEnhancement() is None, "the bytes are already stretched"
    assert renderer.greenContrastEnhancement() is None and renderer.blueContrastEnhancement() is None


def test_pca_colours_equal_an_independent_pca_of_every_valid_pixel(embedding, pca_run):
    _, outputs, feedback, _ = pca_run
    vectors = embedding.values[:, embedding.valid].T
    mean, axes = svd_pca(vectors)
    projected = (vectors.astype(np.float64) - mean) @ axes.T
    lows, highs = np.percentile(projected, 2, axis=0), np.percentile(projected, 98, axis=0)
    expected = stretched(vectors, mean, axes, lows, highs)
    rgb, _ = qgis_bands(outputs["OUTPUT"])
    got = rgb[:, embedding.valid]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, "at most a rounding edge apart"
    assert (got == expected).mean() > 0.999
    assert any(f"of {int(embedding.valid.sum())} valid pixels" in line for line in feedback.infos), feedback.infos


def test_pca_model_file_records_the_projection(embedding, pca_run):
    _, outputs, _, _ = pca_run
    payload = json.loads(outputs["OUTPUT_MODEL"].read_text(encoding="utf-8"))
    assert payload["format"] == "geoembed-pca-1"
    assert payload["band_names"] == BANDS and payload["product"] == "aef"
    assert payload["sample_size"] == int(embedding.valid.sum())
    mean, axes = svd_pca(embedding.values[:, embedding.valid].T)
    np.testing.assert_allclose(payload["mean"], mean, atol=1e-9)
    np.testing.assert_allclose(payload["axes"], axes, atol=1e-6)
    assert payload["stretch"]["percentiles"] == [2.0, 98.0]
    assert len(payload["stretch"]["low"]) == 3 and all(
        lo < hi for lo, hi in zip(payload["stretch"]["low"], payload["stretch"]["high"])
    )
    assert {"geoembed", "numpy", "python"} <= set(payload["versions"])


@pytest.fixture(scope="module")
def overlapping(embedding, tmp_path_factory):
    """Another raster sharing the embedding's rows 40.. and cols 60.. at its own origin, whose first 80 rows hold
    other vectors (the embedding's, sign-flipped and band-reversed): a per-tile fit sees other data there."""
    folder = tmp_path_factory.mktemp("overlap")
    values = embedding.values[:, 40:, 60:].copy()
    other = -embedding.values[::-1, :80, :]
    values[:, :80, :] = other[:, :, : values.shape[2]]
    values[:, :80, :][:, ~embedding.valid[:80, : values.shape[2]]] = NODATA
    x0, y0 = embedding.x0 + 60 * embedding.res, embedding.y0 - 40 * embedding.res
    path = write_embedding_tiff(folder / "other.tif", values, x0, y0, embedding.epsg)
    shared = np.zeros(values.shape[1:], dtype=bool)
    shared[80:, :] = embedding.valid[120:, 60:]
    return path, shared


def test_pca_reused_model_gives_identical_colours_to_shared_pixels(embedding, pca_run, overlapping, tmp_path):
    _, outputs, _, _ = pca_run
    path, shared = overlapping
    assert shared.sum() > 10_000
    reused = tmp_path / "reused.tif"
    feedback = RecordingFeedback()
    run("pca", {"INPUT": path, "MODEL_IN": str(outputs["OUTPUT_MODEL"]), "OUTPUT": str(reused)}, feedback)
    assert any("Reusing the projection" in line for line in feedback.infos), feedback.infos
    first, _ = qgis_bands(outputs["OUTPUT"])
    second, _ = qgis_bands(reused)
    np.testing.assert_array_equal(second[:, 80:, :][:, shared[80:]], first[:, 120:, 60:][:, shared[80:]])
    refit = tmp_path / "refit.tif"
    run("pca", {"INPUT": path, "OUTPUT": str(refit)})
    drifted, _ = qgis_bands(refit)
    assert (drifted[:, 80:, :][:, shared[80:]] != first[:, 120:, 60:][:, shared[80:]]).mean() > 0.5, "no drift to avoid?"


def test_pca_reused_model_on_a_raw_aef_tile_applies_the_saved_numbers(pca_run, tile_2024_31n, tmp_path):
    """INPUT as the raw south-up int8 tile: de-quantised and oriented, then the saved projection applied as is."""
    _, outputs, _, _ = pca_run
    _, tile = tile_2024_31n
    output = tmp_path / "tile_pca.tif"
    run("pca", {"INPUT": str(tile), "MODEL_IN": str(outputs["OUTPUT_MODEL"]), "OUTPUT": str(output)})
    values, valid, _, _ = dequantised_tile(tile)
    payload = json.loads(outputs["OUTPUT_MODEL"].read_text(encoding="utf-8"))
    s = payload["stretch"]
    expected = stretched(values[:, valid].T, np.array(payload["mean"]), payload["axes"], np.array(s["low"]), s["high"])
    rgb, _ = qgis_bands(output)
    assert not valid.all() and (rgb[:, ~valid] == 0).all()
    got = rgb[:, valid]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1 and (got == expected).mean() > 0.999


def _bad_model(kind, folder, model_path):
    if kind == "missing":
        return str(folder / "nope.json"), ["MODEL_IN", "does not exist"]
    if kind == "not-a-model":
        path = folder / "garbage.json"
        path.write_text("{ this is not json", encoding="utf-8")
        return str(path), ["not a GeoEmbed PCA model"]
    payload = json.loads(model_path.read_text(encoding="utf-8"))
    payload["band_names"] = [f"E{i:02d}" for i in range(64)]
    path = folder / "other_bands.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path), ["bands", "same product"]


@pytest.mark.parametrize("kind", ["missing", "not-a-model", "other-bands"])
def test_pca_bad_model_in_fails_in_one_line_and_writes_nothing(embedding, pca_run, tmp_path, kind):
    model_in, words = _bad_model(kind, tmp_path, pca_run[1]["OUTPUT_MODEL"])
    out = tmp_path / "out"
    parameters = {
        "INPUT": embedding.path,
        "MODEL_IN": model_in,
        "OUTPUT": str(out / "pca.tif"),
        "OUTPUT_MODEL": str(out / "m.json"),
    }
    with pytest.raises(QgsProcessingException) as caught:
        run("pca", parameters)
    one_line_error(caught, *words)
    assert files_in(out) == []


@pytest.fixture(scope="module")
def nodata_raster(embedding, tmp_path_factory):
    values = np.full((64, 30, 40), NODATA, dtype=np.float32)
    return write_embedding_tiff(
        tmp_path_factory.mktemp("nodata") / "empty.tif", values, embedding.x0, embedding.y0, embedding.epsg
    )


def test_pca_all_nodata_fails_in_one_line(nodata_raster, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as caught:
        run("pca", {"INPUT": nodata_raster, "OUTPUT": str(out / "pca.tif"), "OUTPUT_MODEL": str(out / "m.json")})
    one_line_error(caught, "no valid pixel")
    assert files_in(out) == []


def test_pca_run_and_load_results_names_and_styles_the_layer(embedding, project, tmp_path):
    import processing

    before = set(project.mapLayers())
    output = tmp_path / "pca.tif"
    processing.runAndLoadResults("geoembed:pca", {"INPUT": embedding.path, "SAMPLE_SIZE": 2000, "OUTPUT": str(output)})
    loaded = [layer for layer_id, layer in project.mapLayers().items() if layer_id not in before]
    assert [layer.source() for layer in loaded] == [str(output)]
    assert loaded[0].name() == "PCA colours"
    renderer = loaded[0].renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer) and renderer.redContrastEnhancement() is None


# === geoembed:cluster ============================================================================


def read_table(path):
    layer = QgsVectorLayer(str(path), "centroids", "ogr")
    assert layer.isValid(), path
    return layer, sorted(layer.getFeatures(), key=lambda f: f["class"])


@pytest.fixture(scope="module")
def cluster_run(embedding, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    outputs = {"OUTPUT": folder / "clusters.tif", "OUTPUT_CENTROIDS": folder / "centroids.gpkg"}
    feedback = RecordingFeedback()
    parameters = {"INPUT": embedding.path, "K": 5, "SEED": 3, **{k: str(v) for k, v in outputs.items()}}
    results = run("cluster", parameters, feedback)
    return results, outputs, feedback, parameters


def test_cluster_writes_a_paletted_byte_raster(embedding, cluster_run):
    results, outputs, feedback, _ = cluster_run
    assert results["OUTPUT"] == str(outputs["OUTPUT"]) and results["OUTPUT_CENTROIDS"].startswith(
        str(outputs["OUTPUT_CENTROIDS"])
    )
    classes, layer = qgis_bands(outputs["OUTPUT"])
    assert layer.bandCount() == 1
    provider = layer.dataProvider()
    assert provider.sourceHasNoDataValue(1) and provider.sourceNoDataValue(1) == 0
    classes = classes[0]
    assert (classes[~embedding.valid] == 0).all()
    assert set(np.unique(classes[embedding.valid])) == {1, 2, 3, 4, 5}
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    entries = {int(c.value): c for c in renderer.classes()}
    assert sorted(entries) == [1, 2, 3, 4, 5], "the legend lists just the clusters"
    assert [entries[v].label for v in range(1, 6)] == [f"cluster {v}" for v in range(1, 6)]
    dataset = gdal.Open(str(outputs["OUTPUT"]))
    band = dataset.GetRasterBand(1)
    table = band.GetRasterColorTable()
    assert table.GetColorEntry(0)[3] == 0
    colours = [table.GetColorEntry(v)[:3] for v in range(1, 6)]
    assert len(set(colours)) == 5
    assert [entries[v].color.getRgb()[:3] for v in range(1, 6)] == [tuple(c) for c in colours]
    assert band.GetCategoryNames()[:6] == ["nodata"] + [f"cluster {v}" for v in range(1, 6)]
    # numbered by decreasing size
    counts = np.bincount(classes[embedding.valid], minlength=6)[1:]
    assert counts[0] == counts.max()
    assert any("sklearn MiniBatchKMeans" in line for line in feedback.infos), feedback.infos


def test_cluster_pixels_get_the_nearest_centroid_of_their_unit_vector(embedding, cluster_run):
    _, outputs, _, _ = cluster_run
    layer, features = read_table(outputs["OUTPUT_CENTROIDS"])
    assert [f.name() for f in layer.fields()][-64:] == BANDS
    assert [f["class"] for f in features] == [1, 2, 3, 4, 5]
    centroids = np.array([[f[name] for name in BANDS] for f in features], dtype=np.float64)
    vectors = unit_rows(embedding.values[:, embedding.valid].T)
    distances = ((vectors[:, np.newaxis, :] - centroids[np.newaxis]) ** 2).sum(axis=2)
    expected = distances.argmin(axis=1) + 1
    classes, _ = qgis_bands(outputs["OUTPUT"])
    got = classes[0][embedding.valid]
    np.testing.assert_array_equal(got, expected)
    counts = np.bincount(got, minlength=6)[1:]
    assert [f["pixels"] for f in features] == counts.tolist()
    assert sum(f["share"] for f in features) == pytest.approx(1.0)
    dataset = gdal.Open(str(outputs["OUTPUT"]))  # kept alive while its band is used
    table = dataset.GetRasterBand(1).GetRasterColorTable()
    assert [f["colour"] for f in features] == ["#{:02x}{:02x}{:02x}".format(*table.GetColorEntry(v)[:3]) for v in range(1, 6)]


def test_cluster_is_deterministic_for_a_seed(cluster_run, tmp_path):
    _, outputs, _, parameters = cluster_run
    again = tmp_path / "again.tif"
    run("cluster", {**parameters, "OUTPUT": str(again), "OUTPUT_CENTROIDS": None})
    assert np.array_equal(gdal.Open(str(again)).ReadAsArray(), gdal.Open(str(outputs["OUTPUT"])).ReadAsArray())


@pytest.fixture(scope="module")
def synthetic(embedding, tmp_path_factory):
    """Four well separated 64-band directions laid out in stripes and patches with noise, plus a nodata box."""
    rng = np.random.default_rng(7)
    rows, cols = 90, 120
    truth = np.zeros((rows, cols), dtype=int)
    truth[:, 40:] = 1
    truth[45:, 70:] = 2
    truth[rng.random((rows, cols)) < 0.1] = 3
    basis, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    values = (basis[:4][truth] + 0.02 * rng.normal(size=(rows, cols, 64))).transpose(2, 0, 1)
    valid = np.ones((rows, cols), dtype=bool)
    valid[10:20, 10:30] = False
    values[:, ~valid] = NODATA
    path = write_embedding_tiff(
        tmp_path_factory.mktemp("synthetic") / "four.tif", values, embedding.x0, embedding.y0, embedding.epsg
    )
    return path, truth, valid


def _same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("backend", ["sklearn", "numpy"])
def test_cluster_recovers_a_synthetic_clustering_exactly(synthetic, tmp_path, monkeypatch, backend):
    from geoembed.analysis import cluster

    if backend == "numpy":
        monkeypatch.setattr(cluster, "has_sklearn", lambda: False)
    path, truth, valid = synthetic
    output = tmp_path / "four.tif"
    feedback = RecordingFeedback()
    run("cluster", {"INPUT": path, "K": 4, "OUTPUT": str(output)}, feedback)
    assert any(("numpy k-means" if backend == "numpy" else "sklearn MiniBatchKMeans") in line for line in feedback.infos)
    classes = qgis_bands(output)[0][0]
    assert (classes[~valid] == 0).all()
    assert _same_partition(classes[valid], truth[valid])
    sizes = np.bincount(truth[valid])
    assert (classes[valid] == np.argsort(-sizes)[truth[valid]] + 1).all(), "classes numbered by decreasing size"


def test_cluster_auto_k_finds_four_and_logs_every_score(synthetic, tmp_path):
    path, truth, valid = synthetic
    output = tmp_path / "auto.tif"
    feedback = RecordingFeedback()
    run("cluster", {"INPUT": path, "K": 7, "AUTO_K": True, "OUTPUT": str(output)}, feedback)
    scores = {}
    for line in feedback.infos:
        if line.startswith("AUTO_K: k = "):
            k, score = line[len("AUTO_K: k = ") :].split(": silhouette ")
            scores[int(k)] = float(score)
    assert sorted(scores) == [2, 3, 4, 5, 6, 7], feedback.infos
    assert max(scores, key=scores.get) == 4
    assert any("AUTO_K picked k = 4" in line for line in feedback.infos)
    classes = qgis_bands(output)[0][0]
    assert _same_partition(classes[valid], truth[valid])
    layer = QgsRasterLayer(str(output), "auto", "gdal")
    assert len(layer.renderer().classes()) == 4


@pytest.fixture(scope="module")
def three_pixels(embedding, tmp_path_factory):
    values = np.full((64, 20, 20), NODATA, dtype=np.float32)
    values[:, 5, 5:8] = np.random.default_rng(0).normal(size=(64, 3))
    return write_embedding_tiff(
        tmp_path_factory.mktemp("three") / "three.tif", values, embedding.x0, embedding.y0, embedding.epsg
    )


@pytest.mark.parametrize(
    "case, parameters, words",
    [
        ("three-pixels", {"K": 8}, ["K=8", "3 valid"]),
        ("nodata", {"K": 4}, ["no valid pixel"]),
        ("embedding", {"K": 1}, ["K"]),
        ("embedding", {"K": 300}, ["K"]),
    ],
    ids=["k-above-valid-pixels", "all-nodata", "k-1", "k-300"],
)
def test_cluster_bad_input_fails_in_one_line_and_writes_nothing(
    embedding, three_pixels, nodata_raster, tmp_path, case, parameters, words
):
    source = {"three-pixels": three_pixels, "nodata": nodata_raster, "embedding": embedding.path}[case]
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as caught:
        run("cluster", {"INPUT": source, **parameters, "OUTPUT": str(out / "c.tif"), "OUTPUT_CENTROIDS": str(out / "c.csv")})
    one_line_error(caught, *words)
    assert files_in(out) == []


def test_cluster_run_and_load_results_names_and_palettes_the_layer(embedding, project, tmp_path):
    import processing

    before = set(project.mapLayers())
    output = tmp_path / "clusters.tif"
    processing.runAndLoadResults(
        "geoembed:cluster", {"INPUT": embedding.path, "K": 3, "SAMPLE_SIZE": 2000, "OUTPUT": str(output)}
    )
    loaded = [layer for layer_id, layer in project.mapLayers().items() if layer_id not in before]
    assert [layer.source() for layer in loaded] == [str(output)]
    assert loaded[0].name() == "Clusters"
    assert isinstance(loaded[0].renderer(), QgsPalettedRasterRenderer)
    labels = {int(c.value): c.label for c in loaded[0].renderer().classes()}
    assert labels == {1: "cluster 1", 2: "cluster 2", 3: "cluster 3"}, "the legend lists just the clusters"


# === cancelling ==================================================================================


@pytest.fixture(scope="module")
def big_embedding(embedding, tmp_path_factory):
    """A 2 x 2 tiling of the embedding: four 512-pixel blocks, so progress is reported before the end."""
    values = np.tile(embedding.values, (1, 2, 2))
    return write_embedding_tiff(tmp_path_factory.mktemp("big") / "big.tif", values, embedding.x0, embedding.y0, embedding.epsg)


CANCEL_CASES = {
    "pca": lambda big, out: {"INPUT": big, "OUTPUT": str(out / "pca.tif"), "OUTPUT_MODEL": str(out / "pca.json")},
    "cluster": lambda big, out: {"INPUT": big, "K": 3, "OUTPUT": str(out / "c.tif"), "OUTPUT_CENTROIDS": str(out / "c.gpkg")},
}


@pytest.mark.parametrize("phase, threshold", [("sampling", 0), ("writing", 50)])
@pytest.mark.parametrize("name", list(CANCEL_CASES))
def test_cancel_leaves_nothing(big_embedding, tmp_path, name, phase, threshold):
    out = tmp_path / "out"
    out.mkdir()
    feedback = QgsProcessingFeedback()
    progress = []

    def on_progress(value):
        progress.append(value)
        if threshold < value < 100:
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    with pytest.raises(QgsProcessingException) as caught:
        run_cpp(name, CANCEL_CASES[name](big_embedding, out), feedback)
    assert any(threshold < value < 100 for value in progress), f"no progress in the {phase} phase: {progress}"
    one_line_error(caught, "cancel")
    assert files_in(out) == [], "outputs or partial files left behind"
