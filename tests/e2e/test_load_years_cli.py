"""geoembed:load with YEARS through `qgis_process.bin`, as a user types it: one GeoTIFF per year on one grid.
Expectations come from the fixture's own values (tests.fixtures.aef). Three qgis_process runs: one that works,
two refusals.
"""

import numpy as np
from osgeo import gdal

from tests.e2e.helpers import json_of, leftovers, load_args, output_of, pixel_at
from tests.fixtures.aef import expected_values, patch_centre

EXTENT = "5.976,6.03,44.99,45.02 [EPSG:4326]"


def test_years_write_one_file_per_year_on_one_grid(qgis_process, aef_mirror, tmp_path):
    index = aef_mirror / "v1" / "annual" / "aef_index.parquet"
    output = tmp_path / "aef.tif"
    completed = qgis_process(*load_args(SOURCE=index, EXTENT=EXTENT, YEARS="2021,2023-2024", OUTPUT=output))
    results = json_of(completed)["results"]
    paths = [str(tmp_path / "aef_2023.tif"), str(tmp_path / "aef_2024.tif")]
    assert results["OUTPUT_YEARS"] == paths and results["OUTPUT"] == paths[-1]
    assert results["YEARS_LOADED"] == "2023,2024"
    assert "2021" in output_of(completed) and "skipped" in output_of(completed)  # the year the mirror lacks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aef_2023.tif", "aef_2024.tif"]
    grids = []
    for path, year in zip(paths, (2023, 2024)):
        dataset = gdal.Open(path)
        assert dataset.GetMetadataItem("GEOEMBED_YEAR") == str(year)
        grids.append((dataset.GetGeoTransform(), dataset.RasterXSize, dataset.RasterYSize, dataset.GetProjection()))
        dataset = None
        lon, lat = patch_centre(5.99, 45.005)  # inside the one 2023 tile, which 2024 also has
        values, epsg = pixel_at(path, lon, lat)
        assert epsg == 32632
        np.testing.assert_allclose(values, expected_values(lon, lat, year), atol=1e-6)
    assert grids[0] == grids[1]
    lon, lat = patch_centre(6.02, 45.005)  # east of 6°E: 2024 only
    assert np.all(pixel_at(paths[0], lon, lat)[0] == -9999.0)
    np.testing.assert_allclose(pixel_at(paths[1], lon, lat)[0], expected_values(lon, lat, 2024), atol=1e-6)


def test_years_refusals_are_one_line_and_write_nothing(qgis_process, aef_mirror, tmp_path):
    index = aef_mirror / "v1" / "annual" / "aef_index.parquet"
    for years, extra, words in (
        ("2018-2019", {}, ["2018-2019", "2023-2024"]),  # none of them in the mirror
        ("2023,2024", {"YEAR": 2024}, ["YEAR", "YEARS", "not both"]),
    ):
        completed = qgis_process(*load_args(SOURCE=index, EXTENT=EXTENT, YEARS=years, OUTPUT=tmp_path / "aef.tif", **extra))
        text = output_of(completed)
        assert completed.returncode != 0, text
        assert all(word in text for word in words), text
        assert "Traceback" not in text
        assert list(tmp_path.iterdir()) == [] and leftovers(tmp_path) == []
