"""geoembed:load on a local mirror, across the 31N/32N zone boundary at 6°E, with a PCA quicklook."""

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.helpers import json_of, load_args, output_of, pixel_at
from tests.fixtures.aef import expected_values, patch_centre

EXTENT = "5.975,6.02,44.99,45.02 [EPSG:4326]"
# Patch centres on both sides of 6°E: in the southern and northern 31N tiles and in the 32N tile.
WEST_POINTS = [patch_centre(5.980, 44.995), patch_centre(5.992, 45.015)]
EAST_POINTS = [patch_centre(6.010, 45.005), patch_centre(6.012, 44.995)]
# Inside the nodata box of the southern 31N tile (rows 40-104, cols 30-90), which no other tile covers.
NODATA_POINT = patch_centre(5.982, 45.005)


@pytest.fixture(scope="module")
def local_run(qgis_process, aef_mirror, tmp_path_factory):
    out = tmp_path_factory.mktemp("local-run")
    completed = qgis_process(
        *load_args(
            PRODUCT="auto",
            SOURCE=aef_mirror,
            YEAR=2024,
            EXTENT=EXTENT,
            CRS="EPSG:32632",  # the extent's centre (5.9975°E) is in 31N: force 32N so the 31N tiles are reprojected
            OUTPUT=out / "out.tif",
            QUICKLOOK=out / "q.png",
        )
    )
    return completed, out


def test_exit_code_results_and_log(local_run):
    completed, out = local_run
    document = json_of(completed)
    assert document["results"]["OUTPUT"] == str(out / "out.tif")
    assert document["results"]["PRODUCT"] == "aef"
    assert document["results"]["YEAR"] == 2024
    log = "\n".join(document.get("log", {}).get("info", [])) or output_of(completed)
    assert "PRODUCT=auto" in log and "AlphaEarth" in log and "(aef)" in log, log
    assert "Traceback" not in output_of(completed)


def test_output_is_north_up_float32_with_named_bands(local_run):
    completed, out = local_run
    assert completed.returncode == 0, output_of(completed)
    dataset = gdal.Open(str(out / "out.tif"))
    assert dataset is not None
    assert dataset.GetGeoTransform()[5] < 0, dataset.GetGeoTransform()
    assert dataset.GetGeoTransform()[1] == pytest.approx(10.0)
    srs = dataset.GetSpatialRef()
    srs.AutoIdentifyEPSG()
    assert (srs.GetAuthorityName(None), srs.GetAuthorityCode(None)) == ("EPSG", "32632")
    assert dataset.RasterCount == 64
    bands = [dataset.GetRasterBand(i + 1) for i in range(64)]
    assert [band.GetDescription() for band in bands] == [f"A{i:02d}" for i in range(64)]
    assert {gdal.GetDataTypeName(band.DataType) for band in bands} == {"Float32"}
    assert {band.GetNoDataValue() for band in bands} == {-9999.0}


@pytest.mark.parametrize("lon, lat", WEST_POINTS + EAST_POINTS, ids=lambda v: f"{v:.3f}")
def test_values_at_patch_centres_on_both_sides_of_6e(local_run, lon, lat):
    completed, out = local_run
    assert completed.returncode == 0, output_of(completed)
    values, _ = pixel_at(out / "out.tif", lon, lat)
    np.testing.assert_allclose(values, expected_values(lon, lat, 2024).astype(np.float64), rtol=0, atol=1e-6)


def test_nodata_stays_nodata(local_run):
    completed, out = local_run
    assert completed.returncode == 0, output_of(completed)
    values, _ = pixel_at(out / "out.tif", *NODATA_POINT)
    assert (values == -9999.0).all(), values


def test_quicklook_is_a_png(local_run):
    completed, out = local_run
    assert completed.returncode == 0, output_of(completed)
    png = out / "q.png"
    assert png.is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
