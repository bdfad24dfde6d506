"""geoembed:pca and geoembed:cluster through `qgis_process.bin`, with file paths as a user types them.

INPUT is the embedding GeoTIFF of the fixture's 2024 31N tile (written here as geoembed:load writes it); the
raw south-up int8 tile is the second INPUT of the PCA reuse run. Five qgis_process runs: two PCA, one
cluster, two bad inputs.
"""

import csv
import json

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import BANDS, NODATA, assert_fails_cleanly, json_of
from tests.e2e.test_analysis_cli import embedding_tile, log_text, run_args


@pytest.fixture(scope="module")
def tile(aef_mirror, aef_specs, tmp_path_factory):
    return embedding_tile(aef_mirror, aef_specs, tmp_path_factory.mktemp("e2e-pca-embedding"))


def read_bytes(path):
    """(array (bands, rows, cols), nodata of each band, data type names) of a raster written by qgis_process."""
    dataset = gdal.Open(str(path))
    bands = [dataset.GetRasterBand(i + 1) for i in range(dataset.RasterCount)]
    array = dataset.ReadAsArray()
    info = ([band.GetNoDataValue() for band in bands], {gdal.GetDataTypeName(band.DataType) for band in bands})
    dataset = None
    return (array[np.newaxis] if array.ndim == 2 else array), *info


def test_pca_cli_saved_projection_gives_the_raw_tile_the_same_colours(qgis_process, tile, tmp_path):
    out = tmp_path / "out"
    first, model = out / "pca.tif", out / "pca.json"
    completed = qgis_process(*run_args("pca", INPUT=tile.path, SAMPLE_SIZE=20000, OUTPUT=first, OUTPUT_MODEL=model))
    document = json_of(completed)
    assert document["results"] == {"OUTPUT": str(first), "OUTPUT_MODEL": str(model)}
    assert "PCA fitted on 20000 of" in log_text(completed)
    rgb, nodata, types = read_bytes(first)
    assert rgb.shape == (3, *tile.shape) and nodata == [0, 0, 0] and types == {"Byte"}
    assert (rgb[:, ~tile.valid] == 0).all() and (rgb[:, tile.valid] >= 1).all()
    payload = json.loads(model.read_text(encoding="utf-8"))
    assert payload["band_names"] == BANDS and payload["sample_size"] == 20000 and payload["product"] == "aef"
    # the documented formula with the saved numbers, on every valid pixel
    vectors = tile.values[:, tile.valid].T.astype(np.float64)
    projected = (vectors - np.array(payload["mean"])) @ np.array(payload["axes"]).T
    low, high = np.array(payload["stretch"]["low"]), np.array(payload["stretch"]["high"])
    expected = np.round(1 + 254 * np.clip((projected - low) / (high - low), 0, 1)).astype(np.uint8).T
    assert np.abs(rgb[:, tile.valid].astype(int) - expected.astype(int)).max() <= 1
    assert (rgb[:, tile.valid] == expected).mean() > 0.999
    # the raw south-up int8 tile, with the saved projection: the very same bytes
    second = out / "raw_pca.tif"
    completed = qgis_process(*run_args("pca", INPUT=tile.raw, MODEL_IN=model, OUTPUT=second))
    assert json_of(completed)["results"]["OUTPUT"] == str(second)
    assert "Reusing the projection" in log_text(completed)
    assert np.array_equal(read_bytes(second)[0], rgb)
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".aux.xml")) == [
        "pca.json",
        "pca.qml",
        "pca.tif",
        "raw_pca.qml",
        "raw_pca.tif",
    ]


def test_cluster_cli_auto_k_with_a_csv_of_centroids(qgis_process, tile, tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # QGIS's vector writer does not create folders
    output, centroids = out / "clusters.tif", out / "centroids.csv"
    completed = qgis_process(
        *run_args("cluster", INPUT=tile.path, K=5, AUTO_K="true", SEED=2, OUTPUT=output, OUTPUT_CENTROIDS=centroids)
    )
    document = json_of(completed)
    assert document["results"]["OUTPUT"] == str(output)
    assert document["results"]["OUTPUT_CENTROIDS"].startswith(str(centroids))
    text = log_text(completed)
    for k in range(2, 6):
        assert f"AUTO_K: k = {k}: silhouette" in text, k
    assert "AUTO_K picked k = " in text
    with open(centroids, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    k = len(rows)
    assert 2 <= k <= 5 and f"AUTO_K picked k = {k}" in text
    assert list(rows[0])[:5] == ["class", "label", "colour", "pixels", "share"] and list(rows[0])[5:] == BANDS
    assert [int(r["class"]) for r in rows] == list(range(1, k + 1))
    classes, nodata, types = read_bytes(output)
    assert nodata == [0] and types == {"Byte"}
    classes = classes[0]
    assert (classes[~tile.valid] == 0).all()
    centres = np.array([[float(r[name]) for name in BANDS] for r in rows])
    vectors = tile.values[:, tile.valid].T.astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = ((vectors[:, np.newaxis, :] - centres[np.newaxis]) ** 2).sum(axis=2).argmin(axis=1) + 1
    assert (classes[tile.valid] == expected).mean() > 0.9999, "each pixel gets the nearest centroid of its unit vector"
    assert [int(r["pixels"]) for r in rows] == np.bincount(classes[tile.valid], minlength=k + 1)[1:].tolist()
    dataset = gdal.Open(str(output))  # kept alive while its band is used
    band = dataset.GetRasterBand(1)
    table = band.GetRasterColorTable()
    assert [r["colour"] for r in rows] == ["#{:02x}{:02x}{:02x}".format(*table.GetColorEntry(v)[:3]) for v in range(1, k + 1)]
    assert band.GetCategoryNames()[: k + 1] == ["nodata"] + [f"cluster {v}" for v in range(1, k + 1)]


def _other_bands_model(tile, folder):
    payload = {
        "format": "geoembed-pca-1",
        "band_names": [f"E{i:02d}" for i in range(64)],
        "product": "other",
        "mean": [0.0] * 64,
        "axes": np.eye(64)[:3].tolist(),
        "stretch": {"percentiles": [2, 98], "low": [-1, -1, -1], "high": [1, 1, 1]},
    }
    path = folder / "other.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return {"MODEL_IN": path}


def _few_pixels(tile, folder):
    values = np.full((64, 12, 12), NODATA, dtype=np.float32)
    values[:, 3, 3:6] = tile.values[:, tile.valid][:, :3]
    path = folder / "three.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 12, 12, 64, gdal.GDT_Float32)
    dataset.SetGeoTransform((tile.x0, 10.0, 0.0, tile.y0, 0.0, -10.0))
    dataset.SetProjection(gdal.Open(str(tile.path)).GetProjection())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "aef"})
    for index in range(64):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(BANDS[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(values[index])
    dataset = None
    return {"INPUT": path, "K": 8}


# id: (algorithm, extra parameters built from (tile, tmp folder), output file name, words the error line must contain)
BAD = {
    "pca-model-of-other-bands": ("pca", _other_bands_model, "pca.tif", ["MODEL_IN", "bands", "same product"]),
    "cluster-k-above-valid-pixels": ("cluster", _few_pixels, "clusters.tif", ["K=8", "3 valid"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_cleanly(qgis_process, tile, tmp_path, case):
    algorithm, build, filename, words = BAD[case]
    out = tmp_path / "out"
    params = {"INPUT": tile.path, **build(tile, tmp_path), "OUTPUT": out / filename}
    params["OUTPUT_MODEL" if algorithm == "pca" else "OUTPUT_CENTROIDS"] = out / ("m.json" if algorithm == "pca" else "c.csv")
    completed = qgis_process(*run_args(algorithm, **params))
    assert_fails_cleanly(completed, words, out, tmp_path)
