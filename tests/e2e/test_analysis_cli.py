"""The analysis algorithms through `qgis_process.bin`, with file paths as a user types them.

INPUT is an embedding GeoTIFF written here from the fixture's 2024 31N tile (north-up, de-quantised with
the published formula, GEOEMBED_PRODUCT=aef: what geoembed:load writes for that tile); geoembed:classify
gets the raw south-up int8 tile itself. Nine qgis_process runs: five that work, four bad inputs.
"""

import json
import math
import re

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from pyproj import Transformer

from tests.e2e.helpers import BANDS, NODATA, assert_fails_cleanly, json_of, output_of, tile_31n
from tests.fixtures.aef import PATCH_DEG, expected_values, patch_centre, tile_codes


def run_args(algorithm, **params):
    return ["--json", "run", f"geoembed:{algorithm}", "--", *(f"{key}={value}" for key, value in params.items())]


class Tile:
    """The embedding of one fixture tile: values (64, rows, cols) north-up, valid mask, grid and helpers."""

    def __init__(self, spec, path, raw):
        self.spec, self.path, self.raw = spec, path, raw
        codes = tile_codes(spec).astype(np.float64)
        self.valid = ~(codes == -128).any(axis=0)
        values = ((codes / 127.5) ** 2 * np.sign(codes)).astype(np.float32)
        values[:, ~self.valid] = NODATA
        self.values = values
        west, _, _, north = spec.bounds
        self.x0, self.y0, self.res = west, north, 10.0
        self.to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{spec.epsg}", always_xy=True)

    @property
    def shape(self):
        return self.values.shape[1:]

    def pixel(self, lon, lat):
        x, y = self.to_utm.transform(lon, lat)
        col, row = math.floor((x - self.x0) / self.res), math.floor((self.y0 - y) / self.res)
        return (row, col) if 0 <= row < self.shape[0] and 0 <= col < self.shape[1] else None

    def safe_centres(self, margin=5):
        """Patch centres whose pixel and `margin` pixels around it are valid."""
        lon_lat = Transformer.from_crs(f"EPSG:{self.spec.epsg}", "EPSG:4326", always_xy=True)
        west, south, east, north = self.spec.bounds
        lons, lats = lon_lat.transform([west, east, east, west], [south, south, north, north])
        out = []
        for j in range(int((max(lats) - min(lats)) / PATCH_DEG) + 2):
            for i in range(int((max(lons) - min(lons)) / PATCH_DEG) + 2):
                lon, lat = patch_centre(min(lons) + i * PATCH_DEG, min(lats) + j * PATCH_DEG)
                where = self.pixel(lon, lat)
                if where is None:
                    continue
                row, col = where
                window = self.valid[max(row - margin, 0) : row + margin + 1, max(col - margin, 0) : col + margin + 1]
                if row >= margin and col >= margin and window.shape == (2 * margin + 1, 2 * margin + 1) and window.all():
                    out.append((lon, lat))
        return out

    def nodata_lonlat(self):
        row0, row1, col0, col1 = self.spec.nodata_boxes[0]
        x = self.x0 + ((col0 + col1) / 2 + 0.5) * self.res
        y = self.y0 - ((row0 + row1) / 2 + 0.5) * self.res
        return Transformer.from_crs(f"EPSG:{self.spec.epsg}", "EPSG:4326", always_xy=True).transform(x, y)


@pytest.fixture(scope="module")
def tile(aef_mirror, aef_specs, tmp_path_factory):
    return embedding_tile(aef_mirror, aef_specs, tmp_path_factory.mktemp("e2e-embedding"))


def embedding_tile(aef_mirror, aef_specs, folder):
    """The 2024 31N tile with a nodata box: raw path and an embedding GeoTIFF written from it into folder."""
    spec, raw = tile_31n(aef_mirror, aef_specs, 2024)
    path = folder / "embeddings.tif"
    result = Tile(spec, path, raw)
    rows, cols = result.shape
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, 64, gdal.GDT_Float32, ["TILED=YES"])
    dataset.SetGeoTransform((result.x0, 10.0, 0.0, result.y0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(spec.epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.SetMetadata({"GEOEMBED_PRODUCT": "aef", "GEOEMBED_YEAR": "2024", "GEOEMBED_SOURCES": json.dumps([str(raw)])})
    for index in range(64):
        band = dataset.GetRasterBand(index + 1)
        band.SetDescription(BANDS[index])
        band.SetNoDataValue(NODATA)
        band.WriteArray(result.values[index])
    dataset = None
    return result


def write_points(path, rows):
    """GeoJSON points in EPSG:4326: rows = [((lon, lat), {properties})]."""
    features = [
        {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": [lon, lat]}}
        for (lon, lat), props in rows
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def log_text(completed):
    document = json.loads(completed.stdout) if completed.stdout.strip().startswith("{") else {}
    log = document.get("log", {})
    return "\n".join(log.get("info", []) + log.get("warning", []) if isinstance(log, dict) else []) + output_of(completed)


# === runs that work ============================================================================


def test_sample_cli(qgis_process, tile, tmp_path):
    centres = tile.safe_centres()
    chosen = centres[:: max(1, len(centres) // 6)][:6]
    lonlats = [*chosen, tile.nodata_lonlat(), (5.5, 44.5)]
    points = write_points(tmp_path / "points.geojson", [(p, {"cls": f"p{i}"}) for i, p in enumerate(lonlats)])
    output = tmp_path / "out" / "samples.gpkg"
    output.parent.mkdir()  # QGIS's vector writer does not create folders
    completed = qgis_process(*run_args("sample", INPUT=tile.path, POINTS=points, OUTPUT=output))
    document = json_of(completed)
    assert document["results"]["OUTPUT"].startswith(str(output))
    assert "2 of 8 points" in log_text(completed)
    assert "Traceback" not in output_of(completed)
    source = ogr.Open(str(output))
    layer = source.GetLayer(0)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    assert names == ["cls", *BANDS]
    assert {definition.GetFieldDefn(i).GetType() for i in range(1, 65)} == {ogr.OFTReal}
    seen = 0
    for feature in layer:
        index = int(feature.GetField("cls")[1:])
        got = [feature.GetField(name) if feature.IsFieldSetAndNotNull(name) else None for name in BANDS]
        if index < len(chosen):
            assert np.allclose(np.array(got, dtype=np.float64), expected_values(*lonlats[index]), atol=1e-6), index
        else:
            assert got == [None] * 64, index
        seen += 1
    assert seen == len(lonlats)


def test_similarity_cli(qgis_process, tile, tmp_path):
    centres = tile.safe_centres()
    queries = [centres[2], centres[-4]]
    query = write_points(tmp_path / "query.geojson", [(p, {"id": i}) for i, p in enumerate(queries)])
    out = tmp_path / "out"
    output, matches = out / "heat.tif", out / "matches.gpkg"
    completed = qgis_process(*run_args("similarity", INPUT=tile.path, QUERY=query, K=5, OUTPUT=output, OUTPUT_MATCHES=matches))
    document = json_of(completed)
    assert document["results"]["OUTPUT"] == str(output)
    assert document["results"]["OUTPUT_MATCHES"].startswith(str(matches))
    vectors = []
    for lon, lat in queries:
        row, col = tile.pixel(lon, lat)
        v = tile.values[:, row, col].astype(np.float64)
        vectors.append(v / np.linalg.norm(v))
    q = np.mean(vectors, axis=0)
    q /= np.linalg.norm(q)
    values = tile.values.astype(np.float64)
    expected = np.tensordot(q, values, axes=(0, 0)) / np.linalg.norm(values, axis=0)
    heat = gdal.Open(str(output)).ReadAsArray().astype(np.float64)
    assert (heat[~tile.valid] == NODATA).all()
    assert np.abs(heat - expected)[tile.valid].max() < 1e-5
    source = ogr.Open(str(matches))  # keep the data source alive while its layer is read
    layer = source.GetLayer(0)
    found = sorted((f.GetField("rank"), f.GetField("score"), f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY()) for f in layer)
    assert [m[0] for m in found] == [1, 2, 3, 4, 5]
    best = np.sort(expected[tile.valid])[::-1][:5]
    assert np.allclose([m[1] for m in found], best, atol=1e-5)
    for _, score, x, y in found:
        col, row = (x - tile.x0) / 10.0 - 0.5, (tile.y0 - y) / 10.0 - 0.5
        assert col == pytest.approx(round(col)) and row == pytest.approx(round(row)), "matches sit on pixel centres"
        assert heat[round(row), round(col)] == pytest.approx(score, abs=1e-6)


@pytest.fixture(scope="module")
def trained(qgis_process, tile, tmp_path_factory):
    """geoembed:train on labelled points (two classes in alternate patches, a third in every fifth)."""
    folder = tmp_path_factory.mktemp("e2e-train")
    centres = tile.safe_centres()[::3]
    rows, counts = [], {}
    for i, p in enumerate(centres):
        label = "crop" if i % 5 == 0 else ("meadow" if i % 2 else "forest")
        counts[label] = counts.get(label, 0) + 1
        rows.append((p, {"cls": label}))
    training = write_points(folder / "training.geojson", rows)
    out = folder / "out"
    outputs = {"OUTPUT": out / "classes.tif", "OUTPUT_MODEL": out / "model.npz", "OUTPUT_REPORT": out / "report.html"}
    completed = qgis_process(
        *run_args("train", INPUT=tile.path, TRAINING=training, FIELD="cls", METHOD="random_forest", **outputs)
    )
    return completed, outputs, counts


def test_train_cli(trained, tile):
    from geoembed.analysis.classify import load_model

    completed, outputs, counts = trained
    document = json_of(completed)
    for key, path in outputs.items():
        assert document["results"][key] == str(path), key
        assert path.exists(), key
    names = sorted(counts)
    dataset = gdal.Open(str(outputs["OUTPUT"]))  # kept alive while its band is used
    band = dataset.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte
    assert band.GetRasterColorTable() is not None
    assert band.GetCategoryNames() == ["nodata", *names]
    classes = band.ReadAsArray()
    assert (classes[~tile.valid] == 0).all() and (classes[tile.valid] >= 1).all() and classes.max() <= len(names)
    model = load_model(str(outputs["OUTPUT_MODEL"]))
    assert model.class_names == names and tuple(model.band_names) == tuple(BANDS) and model.product == "aef"
    assert model.versions.get("sklearn") and model.versions.get("geoembed")
    html = outputs["OUTPUT_REPORT"].read_text(encoding="utf-8")
    assert re.search(r"accuracy: [0-9.]+ %", html) and "Confusion matrix" in html and "F1" in html
    for name in names:
        assert f"<td class='l'>{name}</td><td>{counts[name]}</td>" in html, name
    assert "accuracy" in log_text(completed).lower()


def test_classify_cli_on_a_raw_aef_tile(qgis_process, trained, tile, tmp_path):
    """The saved model on the raw south-up int8 tile gives the class map train made from the same pixels."""
    _, outputs, _ = trained
    output = tmp_path / "out" / "classes.tif"
    completed = qgis_process(*run_args("classify", INPUT=tile.raw, MODEL=outputs["OUTPUT_MODEL"], OUTPUT=output))
    assert json_of(completed)["results"]["OUTPUT"] == str(output)
    dataset = gdal.Open(str(output))
    assert dataset.GetGeoTransform() == pytest.approx((tile.x0, 10.0, 0.0, tile.y0, 0.0, -10.0))
    assert np.array_equal(dataset.ReadAsArray(), gdal.Open(str(outputs["OUTPUT"])).ReadAsArray())
    band = dataset.GetRasterBand(1)
    assert band.GetRasterColorTable() is not None and band.GetCategoryNames()[0] == "nodata"


def test_resample_cli_aggregate(qgis_process, tile, tmp_path):
    output = tmp_path / "out" / "agg50.tif"
    completed = qgis_process(*run_args("resample", INPUT=tile.path, RESOLUTION=50, OUTPUT=output))
    assert json_of(completed)["results"]["OUTPUT"] == str(output)
    assert "MODE=auto: aggregate" in log_text(completed)
    dataset = gdal.Open(str(output))
    rows, cols = tile.shape
    height, width = math.ceil(rows / 5), math.ceil(cols / 5)
    assert dataset.GetGeoTransform() == pytest.approx((tile.x0, 50.0, 0.0, tile.y0, 0.0, -50.0))
    assert (dataset.RasterXSize, dataset.RasterYSize) == (width, height)
    values = tile.values.astype(np.float64)
    values[:, ~tile.valid] = 0.0
    padded = np.zeros((64, height * 5, width * 5))
    padded[:, :rows, :cols] = values
    sums = padded.reshape(64, height, 5, width, 5).sum(axis=(2, 4))
    counts = np.pad(tile.valid, ((0, height * 5 - rows), (0, width * 5 - cols))).reshape(height, 5, width, 5).sum(axis=(1, 3))
    got = dataset.ReadAsArray().astype(np.float64)
    assert np.array_equal(got[0] == NODATA, counts == 0)
    expected = sums[:, counts > 0] / np.linalg.norm(sums[:, counts > 0], axis=0)
    assert np.abs(got[:, counts > 0] - expected).max() < 1e-5


# === bad input =================================================================================


def _far_points(name, props):
    return lambda t, d: {name: write_points(d / "far.geojson", [((10.0, 10.0), props)])}


def _one_class(t, d):
    rows = [(p, {"cls": "forest"}) for p in t.safe_centres()[:5]]
    return {"TRAINING": write_points(d / "one.geojson", rows), "FIELD": "cls"}


# id: (algorithm, extra parameters built from (tile, tmp folder), output file name, words the error line must contain)
BAD = {
    "sample-no-overlap": ("sample", _far_points("POINTS", {"cls": "x"}), "samples.gpkg", ["POINTS", "overlap"]),
    "similarity-query-outside": ("similarity", _far_points("QUERY", {"id": 1}), "heat.tif", ["QUERY", "overlap"]),
    "train-single-class": ("train", _one_class, "classes.tif", ["single class", "forest"]),
    "resample-zero-resolution": ("resample", lambda t, d: {"RESOLUTION": 0}, "out.tif", ["RESOLUTION", "greater than 0"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_cleanly(qgis_process, tile, tmp_path, case):
    algorithm, build, filename, words = BAD[case]
    out = tmp_path / "out"
    params = {"INPUT": tile.path, **build(tile, tmp_path), "OUTPUT": out / filename}
    if algorithm == "train":
        params.update(OUTPUT_MODEL=out / "model.npz", OUTPUT_REPORT=out / "report.html")
    completed = qgis_process(*run_args(algorithm, **params))
    assert_fails_cleanly(completed, words, out, tmp_path)
