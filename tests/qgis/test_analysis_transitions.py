"""geoembed:transitions through Processing: the from -> to map, the matrix table and the report against brute force.

The class maps are written here with GDAL as geoembed:classify writes them (Byte, 0 = nodata, category names,
GEOEMBED_CLASSES); expectations come from the arrays (np.unique over the whole maps, pyproj's Geod for areas on a
geographic grid), never from geoembed.analysis. Outputs are read back through QGIS's providers.
"""

import csv

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Geod
from qgis.core import Qgis, QgsPalettedRasterRenderer, QgsProject, QgsRasterLayer, QgsVectorLayer

from .refusals import assert_refused
from .test_analysis_algorithms import run

NAMES = ["forest", "crop", "water", "urban"]
UTM = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
LONLAT = (6.0, 0.01, 0.0, 60.0, 0.0, -0.01)


def projection(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def write_class_map(path, values, geotransform=UTM, epsg=32631, names=NAMES, year=None, data_type=gdal.GDT_Byte):
    """A class map as classify writes it: 0 = nodata, category names ['nodata', *names], GEOEMBED_* metadata."""
    rows, cols = values.shape
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, 1, data_type)
    dataset.SetGeoTransform(geotransform)
    dataset.SetProjection(projection(epsg))
    meta = {"GEOEMBED_PRODUCT": "aef", "GEOEMBED_CLASSES": "|".join(names)}
    if year:
        meta["GEOEMBED_YEAR"] = str(year)
    dataset.SetMetadata(meta)
    band = dataset.GetRasterBand(1)
    band.SetNoDataValue(0)
    band.SetRasterCategoryNames(["nodata", *names])
    band.WriteArray(values)
    dataset = None
    return str(path)


def class_arrays(rows=90, cols=130, seed=4):
    """(before, after) class values 1..4 with 0 = nodata holes; after changes a third of the pixels."""
    rng = np.random.default_rng(seed)
    before = rng.integers(1, 5, size=(rows, cols)).astype(np.uint8)
    after = before.copy()
    flip = rng.random(before.shape) < 0.3
    after[flip] = rng.integers(1, 5, size=int(flip.sum()))
    before[rng.random(before.shape) < 0.05] = 0
    after[rng.random(before.shape) < 0.05] = 0
    after[:10, :20] = 0
    return before, after


def read_map(path):
    """Band 1 through QGIS's raster provider: (values, layer)."""
    layer = QgsRasterLayer(str(path), "transitions", "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    provider = layer.dataProvider()
    assert provider.dataType(1) == Qgis.DataType.Byte
    block = provider.block(1, layer.extent(), layer.width(), layer.height())
    assert block.hasNoDataValue() and block.noDataValue() == 0
    return np.frombuffer(bytes(block.data()), dtype=np.uint8).reshape(layer.height(), layer.width()), layer


def read_table(path):
    layer = QgsVectorLayer(str(path), "matrix", "ogr")
    assert layer.isValid(), f"QGIS cannot open {path}"
    return [f.attributes() for f in layer.getFeatures()], layer.fields().names()


def brute_pairs(before, after):
    """{(from name, to name): pixels} by np.unique over the whole maps."""
    valid = (before > 0) & (after > 0)
    pairs, counts = np.unique(np.stack([before[valid], after[valid]]), axis=1, return_counts=True)
    return {(NAMES[a - 1], NAMES[b - 1]): int(n) for (a, b), n in zip(pairs.T, counts)}


@pytest.fixture(scope="module")
def transitioned(provider_ready, tmp_path_factory):
    folder = tmp_path_factory.mktemp("transitions")
    before, after = class_arrays()
    first = write_class_map(folder / "classes_2023.tif", before, year=2023)
    second = write_class_map(folder / "classes_2024.tif", after, year=2024)
    out = folder / "out"
    outputs = {"OUTPUT": out / "t.tif", "OUTPUT_TABLE": out / "matrix.csv", "OUTPUT_REPORT": out / "report.html"}
    results = run("transitions", {"INPUT": first, "INPUT_2": second, **{k: str(v) for k, v in outputs.items()}})
    return {"results": results, "outputs": outputs, "before": before, "after": after}


def test_map_labels_every_pixel_with_its_from_to_pair(transitioned):
    before, after = transitioned["before"], transitioned["after"]
    got, _ = read_map(transitioned["outputs"]["OUTPUT"])
    valid = (before > 0) & (after > 0)
    assert (got[~valid] == 0).all() and (got[valid] > 0).all()
    dataset = gdal.Open(str(transitioned["outputs"]["OUTPUT"]))
    dataset.GetMetadata()  # GDAL 3.6's GTiff reads the .aux.xml (category names) only once metadata is asked for
    labels = dataset.GetRasterBand(1).GetRasterCategoryNames()
    for code in np.unique(got[valid]):
        pixels = valid & (got == code)
        pairs = {(NAMES[a - 1], NAMES[b - 1]) for a, b in zip(before[pixels], after[pixels])}
        assert len(pairs) == 1, f"code {code} mixes {pairs}"
        ((a, b),) = pairs
        assert labels[code] == (f"{a} (unchanged)" if a == b else f"{a} → {b}")
    assert len(np.unique(got[valid])) == len(brute_pairs(before, after))
    assert dataset.GetMetadataItem("GEOEMBED_YEAR_FROM") == "2023" and dataset.GetMetadataItem("GEOEMBED_YEAR_TO") == "2024"


def test_table_is_the_matrix_in_hectares_and_pixels(transitioned):
    rows, fields = read_table(transitioned["outputs"]["OUTPUT_TABLE"])
    assert fields == ["from_class", *(f"{n}_ha" for n in NAMES), "total_ha", *(f"{n}_pixels" for n in NAMES), "total_pixels"]
    expected = brute_pairs(transitioned["before"], transitioned["after"])
    assert [r[0] for r in rows] == NAMES
    total_ha = 0.0
    for row in rows:
        for j, to in enumerate(NAMES):
            pixels = expected.get((row[0], to), 0)
            assert int(row[6 + j]) == pixels
            assert float(row[1 + j]) == pytest.approx(pixels * 100.0 / 1e4)
        assert float(row[5]) == pytest.approx(sum(float(v) for v in row[1:5]))
        total_ha += float(row[5])
    valid = (transitioned["before"] > 0) & (transitioned["after"] > 0)
    assert total_ha == pytest.approx(valid.sum() * 100.0 / 1e4)  # the matrix covers exactly the valid area
    results = transitioned["results"]
    changed = int((valid & (transitioned["before"] != transitioned["after"])).sum())
    assert results["VALID_PIXELS"] == int(valid.sum()) and results["CHANGED_PIXELS"] == changed
    assert results["CHANGED_AREA"] == pytest.approx(changed * 0.01)
    assert results["CHANGED_FRACTION"] == pytest.approx(changed / valid.sum())


def test_report_has_matrix_gains_losses_and_changed_share(transitioned):
    page = transitioned["outputs"]["OUTPUT_REPORT"].read_text(encoding="utf-8")
    before, after = transitioned["before"], transitioned["after"]
    valid = (before > 0) & (after > 0)
    changed = valid & (before != after)
    assert f"{100 * changed.sum() / valid.sum():.2f} %" in page
    for name in NAMES:
        assert name in page
    crop = NAMES.index("crop") + 1
    net_ha = ((valid & (after == crop)).sum() - (valid & (before == crop)).sum()) * 0.01
    assert f"{net_ha:,.2f}" in page
    assert "classes_2023.tif (2023)" in page and "classes_2024.tif (2024)" in page


def test_map_on_another_grid_is_put_on_input_s_grid_with_nearest(tmp_path):
    before, _ = class_arrays(rows=60, cols=80)
    rng = np.random.default_rng(9)
    coarse = rng.integers(1, 5, size=(30, 40)).astype(np.uint8)
    first = write_class_map(tmp_path / "a.tif", before)
    second = write_class_map(tmp_path / "b.tif", coarse, geotransform=(500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))
    out = tmp_path / "out"
    run("transitions", {"INPUT": first, "INPUT_2": second, "OUTPUT": str(out / "t.tif"), "OUTPUT_TABLE": str(out / "m.csv")})
    after = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    rows, _ = read_table(out / "m.csv")
    expected = brute_pairs(before, after)
    got = {(row[0], to): int(row[6 + j]) for row in rows for j, to in enumerate(NAMES) if int(row[6 + j])}
    assert got == expected


def test_areas_on_a_geographic_grid_sum_to_the_ellipsoidal_valid_area(tmp_path):
    before, after = class_arrays(rows=40, cols=50)
    first = write_class_map(tmp_path / "a.tif", before, LONLAT, 4326)
    second = write_class_map(tmp_path / "b.tif", after, LONLAT, 4326)
    out = tmp_path / "out"
    run("transitions", {"INPUT": first, "INPUT_2": second, "OUTPUT": str(out / "t.tif"), "OUTPUT_TABLE": str(out / "m.csv")})
    rows, _ = read_table(out / "m.csv")
    geod = Geod(ellps="WGS84")
    valid = (before > 0) & (after > 0)
    expected_m2 = 0.0
    for row in range(before.shape[0]):
        top = 60.0 - 0.01 * row
        area, _ = geod.polygon_area_perimeter([6.0, 6.01, 6.01, 6.0], [top - 0.01, top - 0.01, top, top])
        expected_m2 += abs(area) * valid[row].sum()
    assert sum(float(r[5]) for r in rows) == pytest.approx(expected_m2 / 1e4, rel=1e-6)


def test_run_and_load_results_styles_the_map_with_pair_labels(transitioned, tmp_path):
    import processing

    project = QgsProject.instance()
    before = set(project.mapLayers())
    folder = transitioned["outputs"]["OUTPUT"].parent.parent
    try:
        processing.runAndLoadResults(
            "geoembed:transitions",
            {
                "INPUT": str(folder / "classes_2023.tif"),
                "INPUT_2": str(folder / "classes_2024.tif"),
                "OUTPUT": str(tmp_path / "t.tif"),
            },
        )
        loaded = [
            lyr for lyr_id, lyr in project.mapLayers().items() if lyr_id not in before and lyr.source() == str(tmp_path / "t.tif")
        ]
        assert len(loaded) == 1 and loaded[0].name() == "Transitions"
        renderer = loaded[0].renderer()
        assert isinstance(renderer, QgsPalettedRasterRenderer)
        labels = [c.label for c in renderer.classes()]
        assert "forest → crop" in labels and "water (unchanged)" in labels
        colours = {c.label: c.color for c in renderer.classes()}
        muted = colours["water (unchanged)"]
        assert muted.saturation() < colours["forest → crop"].saturation()
    finally:
        for layer_id in set(project.mapLayers()) - before:
            project.removeMapLayer(layer_id)


def _far_away(folder):
    before, _ = class_arrays(rows=20, cols=20)
    return write_class_map(folder / "far.tif", before, (700000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))


def _embedding(folder):
    dataset = gdal.GetDriverByName("GTiff").Create(str(folder / "emb.tif"), 20, 20, 3, gdal.GDT_Float32)
    dataset.SetGeoTransform(UTM)
    dataset.SetProjection(projection(32631))
    dataset.GetRasterBand(1).Fill(0.5)
    dataset = None
    return str(folder / "emb.tif")


def _float_map(folder):
    dataset = gdal.GetDriverByName("GTiff").Create(str(folder / "float.tif"), 20, 20, 1, gdal.GDT_Float32)
    dataset.SetGeoTransform(UTM)
    dataset.SetProjection(projection(32631))
    dataset = None
    return str(folder / "float.tif")


def _not_a_raster(folder):
    (folder / "garbage.tif").write_bytes(b"not a raster at all" * 10)
    return str(folder / "garbage.tif")


@pytest.mark.parametrize(
    "make, words",
    [
        (_not_a_raster, ["garbage.tif"]),
        (_far_away, ["overlap"]),
        (_embedding, ["INPUT_2", "emb.tif", "3 bands", "class map"]),
        (_float_map, ["INPUT_2", "float.tif", "Float32", "whole numbers"]),
    ],
    ids=["not-a-raster", "no-overlap", "embedding-not-class-map", "float-values"],
)
def test_transitions_bad_input_is_refused_in_one_line(tmp_path, make, words):
    before, _ = class_arrays(rows=30, cols=30)
    inputs = tmp_path / "in"
    inputs.mkdir()
    first = write_class_map(inputs / "a.tif", before)
    second = make(inputs)
    out = tmp_path / "out"
    out.mkdir()
    parameters = {
        "INPUT": first,
        "INPUT_2": second,
        "OUTPUT": str(out / "t.tif"),
        "OUTPUT_TABLE": str(out / "m.csv"),
        "OUTPUT_REPORT": str(out / "r.html"),
    }
    assert_refused("transitions", parameters, words, out, make.__name__)


def test_table_opens_as_plain_csv(transitioned):
    with open(transitioned["outputs"]["OUTPUT_TABLE"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["from_class"] for r in rows] == NAMES
