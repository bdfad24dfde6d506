"""geoembed:load with YEARS through Processing: one file per year on one grid, read back through QGIS's provider.

The fixture mirror has 2023 (one 31N tile) and 2024 (31N, 32N, ...). Each year's file must hold what a single-year
load of that year holds on the same grid, and the fixture's own values at its patch centres.
"""

import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsRasterLayer

from .helpers import EXTENT, RUNNERS, check_values, provider_values, settle
from .refusals import assert_refused

runners = pytest.mark.parametrize("runner", list(RUNNERS))


def layer_of(path):
    layer = QgsRasterLayer(str(path), os.path.basename(str(path)), "gdal")
    assert layer.isValid(), f"QGIS cannot open {path}"
    return layer


@pytest.fixture(scope="module")
def years_run(provider_ready, index_file, tmp_path_factory):
    """{runner: (folder, results)} of YEARS=2023,2024 from the index, once per runner."""
    runs = {}

    def run(runner):
        if runner not in runs:
            folder = tmp_path_factory.mktemp("years")
            parameters = {"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT, "YEARS": "2023,2024"}
            runs[runner] = folder, RUNNERS[runner]({**parameters, "OUTPUT": str(folder / "aef.tif")})
        return runs[runner]

    return run


@runners
def test_results_name_every_years_file_oldest_first(years_run, runner):
    folder, results = years_run(runner)
    expected = [str(folder / "aef_2023.tif"), str(folder / "aef_2024.tif")]
    assert results["OUTPUT_YEARS"] == expected
    assert results["OUTPUT"] == expected[-1]  # the latest year, so that chaining works
    assert results["YEARS_LOADED"] == "2023,2024" and results["YEAR"] == 2024 and results["PRODUCT"] == "aef"
    assert sorted(os.listdir(folder)) == ["aef_2023.tif", "aef_2024.tif"]
    for path, year in zip(expected, (2023, 2024)):
        assert gdal.Open(path).GetMetadataItem("GEOEMBED_YEAR") == str(year)


@runners
def test_every_year_has_the_same_grid_in_qgis(years_run, runner):
    _, results = years_run(runner)
    layers = [layer_of(path) for path in results["OUTPUT_YEARS"]]
    first = layers[0]
    for layer in layers[1:]:
        assert layer.crs() == first.crs() and layer.crs().authid() == "EPSG:32632"
        assert (layer.width(), layer.height()) == (first.width(), first.height())
        assert layer.extent() == first.extent()
        assert layer.rasterUnitsPerPixelX() == first.rasterUnitsPerPixelX() == 10.0


@runners
def test_each_year_holds_the_single_year_load_of_that_year(years_run, runner, index_file, tmp_path):
    _, results = years_run(runner)
    for path in results["OUTPUT_YEARS"]:
        year = int(gdal.Open(path).GetMetadataItem("GEOEMBED_YEAR"))
        single = RUNNERS[runner](
            {"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT, "YEAR": year, "OUTPUT": str(tmp_path / f"{year}.tif")}
        )
        got, expected = layer_of(path), layer_of(single["OUTPUT"])
        assert got.extent() == expected.extent() and (got.width(), got.height()) == (expected.width(), expected.height())
        for band in (1, 33, 64):
            np.testing.assert_array_equal(provider_values(got, band), provider_values(expected, band))


@runners
def test_each_year_holds_the_fixtures_values_of_its_year(years_run, runner, aef_specs):
    _, results = years_run(runner)
    for path, year in zip(results["OUTPUT_YEARS"], (2023, 2024)):
        specs = [s for s in aef_specs if s.year == year and s.zone in ("31N", "32N")]
        valid, nodata = check_values(layer_of(path), specs, year)
        assert len(valid) >= 20
        if year == 2023:  # no 2023 tile east of 6°E: nodata there, on the same grid as 2024
            assert any(lon > 6.02 for lon, _ in nodata)


def test_a_missing_year_is_skipped_with_a_warning(index_file, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Warnings(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushWarning(self, warning):  # noqa: N802 - QGIS API
            self.lines.append(warning)

    feedback = Warnings()
    parameters = {"SOURCE": str(index_file), "EXTENT": EXTENT, "YEARS": "2021,2024", "OUTPUT": str(tmp_path / "a.tif")}
    results = processing.run("geoembed:load", parameters, feedback=feedback)
    assert results["YEARS_LOADED"] == "2024" and results["OUTPUT_YEARS"] == [str(tmp_path / "a_2024.tif")]
    assert len([line for line in feedback.lines if "2021" in line]) == 1
    assert sorted(os.listdir(tmp_path)) == ["a_2024.tif"]


def test_run_and_load_results_adds_one_styled_layer_per_year(project, index_file, tmp_path):
    import processing

    before = set(project.mapLayers())
    output = tmp_path / "aef.tif"
    parameters = {"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT, "YEARS": "2023-2024", "OUTPUT": str(output)}
    processing.runAndLoadResults("geoembed:load", parameters)
    settle()
    added = {layer.name(): layer for layer_id, layer in project.mapLayers().items() if layer_id not in before}
    assert sorted(added) == ["AEF 2023 embeddings", "AEF 2024 embeddings"]
    assert added["AEF 2023 embeddings"].source() == str(tmp_path / "aef_2023.tif")
    assert all(layer.renderer().type() == "multibandcolor" for layer in added.values())
    assert not output.exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"YEARS": "2023,2024", "YEAR": 2024}, ["YEAR", "YEARS", "not both"]),
        ({"YEARS": "2023..2024"}, ["YEARS", "2023..2024"]),
        ({"YEARS": "2024-2023"}, ["backwards", "2023-2024"]),
        ({"YEARS": "1990-1995"}, ["1990", "2000-2100"]),
        ({"YEARS": "2000-2040"}, ["more than 30"]),
        ({"YEARS": "2010-2012"}, ["none of YEARS 2010-2012", "2023-2024"]),
    ],
)
def test_refusals(extra, words, index_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    parameters = {"PRODUCT": "aef", "SOURCE": str(index_file), "EXTENT": EXTENT, "OUTPUT": str(out / "aef.tif"), **extra}
    assert_refused("load", parameters, words, out, case=str(extra))
