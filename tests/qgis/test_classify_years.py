"""geoembed:classify with INPUTS: one model, several years; each year's map equals classifying that year alone.

The 2024 embedding comes from geoembed:load; the other "years" are written here with GDAL from it (bands rolled in a
box, so their classes differ), each with its GEOEMBED_YEAR. Maps are read back through QGIS's raster provider.
"""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import Qgis, QgsProcessingFeedback, QgsProject, QgsRasterLayer

from .refusals import assert_refused
from .test_analysis_algorithms import BANDS, EXTENT, files_in, read_embedding, run, safe_patch_centres
from .test_analysis_change_compare import projection_of, write_raster
from .test_analysis_train import training_points


def read_classes(path):
    """Band 1 of a class map through QGIS's raster provider: (values uint8, layer)."""
    layer = QgsRasterLayer(str(path), "classes", "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    provider = layer.dataProvider()
    assert provider.dataType(1) == Qgis.DataType.Byte
    block = provider.block(1, layer.extent(), layer.width(), layer.height())
    return np.frombuffer(bytes(block.data()), dtype=np.uint8).reshape(layer.height(), layer.width()), layer


@pytest.fixture(scope="module")
def embedding(provider_ready, aef_mirror, tmp_path_factory):
    output = tmp_path_factory.mktemp("years-embedding") / "embeddings_2024.tif"
    run("load", {"SOURCE": str(aef_mirror), "YEAR": 2024, "EXTENT": EXTENT, "OUTPUT": str(output)})
    return read_embedding(output)


def year_raster(embedding, folder, year, shift, name=None, bands=BANDS):
    """The embedding with its bands rolled by `shift` in a box (another 'year'), GEOEMBED_YEAR = year (or none)."""
    values = embedding.values.copy()
    values[:, 20:120, 30:200] = np.roll(embedding.values[:, 20:120, 30:200], shift, axis=0)
    values[:, ~embedding.valid] = -9999.0
    path = folder / (name or f"embeddings_{year}.tif")
    return write_raster(path, values[: len(bands)], embedding.geotransform, projection_of(embedding), band_names=bands, year=year)


@pytest.fixture(scope="module")
def years(embedding, tmp_path_factory):
    folder = tmp_path_factory.mktemp("years")
    return {2022: year_raster(embedding, folder, 2022, 5), 2023: year_raster(embedding, folder, 2023, 11)}


@pytest.fixture(scope="module")
def model(embedding, tmp_path_factory):
    centres = safe_patch_centres(embedding, margin=6)  # as test_analysis_train: class k owns patches k, k + 3, k + 6
    layer, _ = training_points(embedding, centres[:: len(centres) // 9][:9], "text")
    folder = tmp_path_factory.mktemp("years-model")
    path = folder / "model.npz"
    run(
        "train",
        {
            "INPUT": embedding.path,
            "TRAINING": layer,
            "FIELD": "cls",
            "METHOD": "nearest_centroid",
            "OUTPUT": str(folder / "train.tif"),
            "OUTPUT_MODEL": str(path),
        },
    )
    return str(path)


@pytest.fixture(scope="module")
def classified(embedding, years, model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classified-years")
    output, confidence = folder / "classes.tif", folder / "confidence.tif"
    feedback = ProgressFeedback()
    results = run(
        "classify",
        {
            "INPUT": embedding.path,
            "MODEL": model,
            "INPUTS": [years[2023], years[2022]],
            "OUTPUT": str(output),
            "OUTPUT_CONFIDENCE": str(confidence),
        },
        feedback,
    )
    return {"results": results, "folder": folder, "output": output, "confidence": confidence, "feedback": feedback}


class ProgressFeedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.values = []
        self.progressChanged.connect(self.values.append)


def alone(source, model, folder):
    """classify on one raster, without INPUTS: (classes, confidence) arrays."""
    output, confidence = folder / "alone.tif", folder / "alone_confidence.tif"
    run("classify", {"INPUT": source, "MODEL": model, "OUTPUT": str(output), "OUTPUT_CONFIDENCE": str(confidence)})
    return read_classes(output)[0], gdal.Open(str(confidence)).ReadAsArray()


def test_each_year_equals_classifying_that_year_alone(embedding, years, model, classified, tmp_path):
    folder = classified["folder"]
    for year, source in ((2024, embedding.path), (2023, years[2023]), (2022, years[2022])):
        suffix = "" if year == 2024 else f"_{year}"
        got, layer = read_classes(folder / f"classes{suffix}.tif")
        expected, expected_confidence = alone(source, model, tmp_path / str(year))
        np.testing.assert_array_equal(got, expected)
        confidence = gdal.Open(str(folder / f"confidence{suffix}.tif")).ReadAsArray()
        np.testing.assert_array_equal(confidence, expected_confidence)
        assert (got[embedding.valid] > 0).all() and (got[~embedding.valid] == 0).all()
    first, _ = read_classes(folder / "classes_2022.tif")
    last, _ = read_classes(folder / "classes.tif")
    assert (first != last).any(), "the set-up needs years whose classes differ"


def test_every_year_has_the_same_classes_palette_and_names(classified):
    folder = classified["folder"]
    reference = None
    for name in ("classes.tif", "classes_2022.tif", "classes_2023.tif"):
        dataset = gdal.Open(str(folder / name))  # kept: a band outliving its dataset crashes GDAL's Python
        dataset.GetMetadata()  # GDAL 3.6's GTiff reads the .aux.xml (category names) only once metadata is asked for
        band = dataset.GetRasterBand(1)
        table = band.GetRasterColorTable()
        style = (
            tuple(band.GetRasterCategoryNames()),
            tuple(table.GetColorEntry(i) for i in range(4)),
            dataset.GetMetadataItem("GEOEMBED_CLASSES"),
        )
        assert style[0][:4] == ("nodata", "forest", "urban", "water")
        reference = reference or style
        assert style == reference, name
        assert (folder / name.replace(".tif", ".qml")).exists()


def test_output_years_lists_every_map_oldest_first(classified):
    folder, results = classified["folder"], classified["results"]
    assert results["OUTPUT"] == str(folder / "classes.tif")
    assert results["OUTPUT_YEARS"] == [str(folder / f"classes{s}.tif") for s in ("_2022", "_2023", "")]
    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".tif")
    assert names == [
        "classes.tif",
        "classes_2022.tif",
        "classes_2023.tif",
        "confidence.tif",
        "confidence_2022.tif",
        "confidence_2023.tif",
    ]


def test_progress_spans_all_years(classified):
    values = classified["feedback"].values
    assert values == sorted(values), "progress must only grow"
    assert max(values) == pytest.approx(100.0)
    assert any(30 < v < 70 for v in values), "progress must not restart at 0 for every year"


def test_years_without_metadata_are_named_by_their_position(embedding, model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    first = year_raster(embedding, folder, None, 3, "a.tif")
    second = year_raster(embedding, folder, None, 7, "b.tif")
    out = tmp_path / "out"
    results = run("classify", {"INPUT": embedding.path, "MODEL": model, "INPUTS": [first, second], "OUTPUT": str(out / "c.tif")})
    assert results["OUTPUT_YEARS"] == [str(out / "c_1.tif"), str(out / "c_2.tif"), str(out / "c.tif")]
    np.testing.assert_array_equal(read_classes(out / "c_2.tif")[0], alone(second, model, tmp_path / "alone")[0])


@pytest.mark.parametrize("kind", ["duplicate-years", "input-year", "other-bands"])
def test_classify_years_refusals(embedding, years, model, tmp_path, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    if kind == "duplicate-years":
        inputs, words = [years[2022], year_raster(embedding, folder, 2022, 2, "again.tif")], ["2022", "again.tif", "once"]
    elif kind == "input-year":
        inputs, words = [years[2023], year_raster(embedding, folder, 2024, 2, "y.tif")], ["2024", "y.tif", "INPUT", "once"]
    else:
        other = year_raster(embedding, folder, 2021, 2, "short.tif", bands=BANDS[:32])
        inputs, words = [years[2023], other], ["short.tif", "64 bands", "32"]
    out = tmp_path / "out"
    out.mkdir()
    parameters = {"INPUT": embedding.path, "MODEL": model, "INPUTS": inputs, "OUTPUT": str(out / "c.tif")}
    assert_refused("classify", {**parameters, "OUTPUT_CONFIDENCE": str(out / "p.tif")}, words, out, kind)


class CancelLater(QgsProcessingFeedback):
    """Cancels once the progress passes a fraction (in a later year than the first)."""

    def __init__(self, at):
        super().__init__()
        self.progressChanged.connect(lambda value: self.cancel() if value > at else None)


def test_cancel_in_a_later_year_leaves_none_of_the_run_s_files(embedding, years, model, tmp_path):
    out = tmp_path / "out"
    parameters = {
        "INPUT": embedding.path,
        "MODEL": model,
        "INPUTS": [years[2022], years[2023]],
        "OUTPUT": str(out / "c.tif"),
        "OUTPUT_CONFIDENCE": str(out / "p.tif"),
    }
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException):
        run("classify", parameters, CancelLater(50.0))
    assert files_in(out) == []


def test_run_and_load_results_loads_every_year_styled(embedding, years, model, tmp_path):
    import processing
    from qgis.core import QgsPalettedRasterRenderer

    project = QgsProject.instance()
    before = set(project.mapLayers())
    try:
        processing.runAndLoadResults(
            "geoembed:classify",
            {"INPUT": embedding.path, "MODEL": model, "INPUTS": [years[2022]], "OUTPUT": str(tmp_path / "c.tif")},
        )
        loaded = {lyr.name(): lyr for lyr_id, lyr in project.mapLayers().items() if lyr_id not in before}
        assert sorted(loaded) == ["Classes 2022", "Classes 2024"]
        for layer in loaded.values():
            assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)
            assert [c.label for c in layer.renderer().classes()] == ["forest", "urban", "water"]
    finally:
        for layer_id in set(project.mapLayers()) - before:
            project.removeMapLayer(layer_id)
