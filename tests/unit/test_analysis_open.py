"""open_embeddings for the analysis tools: GeoEmbed GeoTIFFs, AEF tiles from the fixture mirror, missing inputs."""

import numpy as np
import pytest
from pyproj import Transformer

from geoembed.analysis.sampling import sample
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.open import open_embeddings
from geoembed.loaders.raster.embedding_tiff import EmbeddingTiff
from geoembed.loaders.raster.grid import Window
from geoembed.loaders.raster.writer import write_geotiff
from tests.fixtures.aef import patch_centre
from tests.unit.helpers import QuietLog, assert_one_line, expected_at, find_spec, tile_path
from tests.unit.test_analysis_memraster import random_raster


@pytest.fixture
def written(tmp_path):
    raster = random_raster(45, 37, bands=6, seed=12, res_x=10.0, res_y=10.0)
    path = write_geotiff(raster, str(tmp_path / "emb.tif"), block=16)
    return raster, path


def test_geoembed_geotiff_opens_as_embedding_tiff(written):
    raster, path = written
    opened = open_embeddings(path, QuietLog())
    try:
        assert isinstance(opened, EmbeddingTiff)
        assert opened.grid == raster.grid
        assert opened.band_names == raster.band_names
        assert opened.provenance.product == "test"
        block = opened.read(Window(0, 0, 45, 37))
        assert block.values.dtype == np.float32
        np.testing.assert_array_equal(block.valid, raster.valid)
        np.testing.assert_array_equal(block.values[:, raster.valid], raster.values[:, raster.valid])
        part = opened.read(Window(7, 11, 20, 9))
        np.testing.assert_array_equal(part.valid, raster.valid[11:20, 7:27])
        np.testing.assert_array_equal(part.values[:, part.valid], raster.values[:, 11:20, 7:27][:, part.valid])
    finally:
        opened.close()


def test_sampling_a_geotiff_equals_direct_lookup(written):
    raster, path = written
    opened = open_embeddings(path, QuietLog())
    g = raster.grid
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(-3, 40, 300), rng.integers(-3, 48, 300)
    xs, ys = g.x0 + (cols + rng.uniform(0.01, 0.99, 300)) * g.res_x, g.y0 - (rows + rng.uniform(0.01, 0.99, 300)) * g.res_y
    values, valid = sample(opened, xs, ys, block=8)
    for i, (row, col) in enumerate(zip(rows, cols)):
        inside = 0 <= row < g.height and 0 <= col < g.width
        ok = inside and raster.valid[row, col]
        assert valid[i] == ok
        if ok:
            np.testing.assert_array_equal(values[i], raster.values[:, row, col])
        else:
            assert np.isnan(values[i]).all()
    opened.close()


@pytest.mark.parametrize(("year", "zone"), [(2024, "31N"), (2024, "56S")])
def test_aef_tile_opens_as_dequantised_north_up_mosaic(aef_mirror, aef_specs, year, zone):
    spec = find_spec(aef_specs, year, zone)
    opened = open_embeddings(str(tile_path(aef_mirror, spec)), QuietLog())
    try:
        assert not isinstance(opened, EmbeddingTiff)
        g = opened.grid
        assert g.crs == f"EPSG:{spec.epsg}"
        assert g.geotransform[5] < 0 and g.geotransform[1] > 0  # north-up
        assert (g.x0, g.y0, g.res_x, g.res_y) == (spec.west, spec.south + 10 * spec.height, 10.0, 10.0)
        assert (g.width, g.height) == (spec.width, spec.height)
        assert len(opened.band_names) == 64 and opened.band_names[0] == "A00"
        block = opened.read(Window(0, 0, g.width, g.height))
        assert block.values.dtype == np.float32
        to_utm = Transformer.from_crs("EPSG:4326", g.crs, always_xy=True)
        to_lonlat = Transformer.from_crs(g.crs, "EPSG:4326", always_xy=True)
        west, south, east, north = g.bounds
        rng = np.random.default_rng(year)
        checked = 0
        for x, y in zip(rng.uniform(west + 200, east - 200, 60), rng.uniform(south + 200, north - 200, 60)):
            lon, lat = patch_centre(*to_lonlat.transform(x, y))
            px, py = to_utm.transform(lon, lat)
            col, row = int((px - g.x0) // g.res_x), int((g.y0 - py) // g.res_y)
            if not (0 <= col < g.width and 0 <= row < g.height):
                continue
            in_box = any(r0 <= row < r1 and c0 <= col < c1 for r0, r1, c0, c1 in spec.nodata_boxes)
            assert block.valid[row, col] == (not in_box), (row, col)
            if not in_box:
                np.testing.assert_allclose(block.values[:, row, col], expected_at(lon, lat, year), rtol=1e-6, atol=1e-7)
                checked += 1
        assert checked >= 30
        for r0, r1, c0, c1 in spec.nodata_boxes:
            assert not block.valid[r0:r1, c0:c1].any()
        assert block.valid.sum() == g.width * g.height - sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in spec.nodata_boxes)
    finally:
        opened.close()


def test_missing_input_is_a_one_line_error(tmp_path):
    for source in (str(tmp_path / "missing.tif"), str(tmp_path / "nothing" / "tile.tiff"), ""):
        with pytest.raises(GeoEmbedError) as info:
            open_embeddings(source, QuietLog())
        message = assert_one_line(info.value)
        if source:
            assert source in message
