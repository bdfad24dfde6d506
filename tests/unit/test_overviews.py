"""Embedding overviews: each overview pixel is the (re-normalised) mean of the valid full-resolution vectors under it,
computed here with plain numpy; and the view reader picks the level that fits the screen."""

import math

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.model import EmbeddingBlock, EmbeddingRaster, Provenance
from geoembed.loaders.raster import overviews
from geoembed.loaders.raster.grid import Grid, Window

NODATA = -9999.0


def write(path, values, data_type=gdal.GDT_Float32, nodata=NODATA, scale=None):
    bands, rows, cols = values.shape
    options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "INTERLEAVE=BAND"]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, data_type, options)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    for index in range(bands):
        band = dataset.GetRasterBand(index + 1)
        band.WriteArray(values[index])
        band.SetNoDataValue(nodata)
        if scale is not None:
            band.SetScale(scale)
    dataset = None
    return path


def unit_field(bands, rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((bands, rows, cols)).astype(np.float32)
    return values / np.linalg.norm(values, axis=0)


def expected_level(values, valid, factor, normalise):
    """The mean of the valid vectors of each factor x factor block (edge blocks: the pixels there are), brute force."""
    bands, rows, cols = values.shape
    out_rows, out_cols = math.ceil(rows / factor), math.ceil(cols / factor)
    means = np.zeros((bands, out_rows, out_cols))
    ok = np.zeros((out_rows, out_cols), dtype=bool)
    for r in range(out_rows):
        for c in range(out_cols):
            cell = (slice(r * factor, (r + 1) * factor), slice(c * factor, (c + 1) * factor))
            under = valid[cell]
            if under.any():
                mean = values[:, cell[0], cell[1]][:, under].astype(np.float64).mean(axis=1)
                means[:, r, c] = mean / np.linalg.norm(mean) if normalise else mean
                ok[r, c] = True
    return means, ok


def read_level(path, index):
    dataset = gdal.Open(str(path))
    return np.stack([dataset.GetRasterBand(b + 1).GetOverview(index).ReadAsArray() for b in range(dataset.RasterCount)])


@pytest.mark.parametrize("external", [False, True])
@pytest.mark.parametrize("shape", [(3, 150, 133), (4, 64, 64)])
def test_overview_pixels_are_normalised_block_means_of_the_valid_pixels(tmp_path, shape, external):
    values = unit_field(*shape)
    valid = np.ones(shape[1:], dtype=bool)
    valid[10:30, 5:40] = False  # a nodata box across block edges
    valid[:4, :4] = False  # a whole level-2 and level-4 pixel of nodata
    values[:, ~valid] = NODATA
    path = write(tmp_path / "e.tif", values)
    factors = overviews.build(path, normalise=True, smallest=8, external=external)
    assert factors == [f for f in (2, 4, 8, 16) if math.ceil(max(shape[1:]) / f) >= 8]
    dataset = gdal.Open(str(path))
    assert dataset.GetRasterBand(1).GetOverviewCount() == len(factors)
    assert (tmp_path / "e.tif.ovr").exists() == external
    for index, factor in enumerate(factors):
        got = read_level(path, index)
        means, ok = expected_level(values, valid, factor, normalise=True)
        assert got.shape == means.shape
        np.testing.assert_array_equal(got[0] == NODATA, ~ok)
        np.testing.assert_allclose(got[:, ok], means[:, ok], atol=1e-5)  # float32 sums of four children
        np.testing.assert_allclose(np.linalg.norm(got[:, ok], axis=0), 1.0, atol=1e-5)


def test_without_normalising_the_mean_is_kept_and_gdal_average_would_differ(tmp_path):
    values = unit_field(2, 40, 40) * 3.0
    valid = np.ones((40, 40), dtype=bool)
    valid[0, 0] = False
    values[:, 0, 0] = NODATA
    path = write(tmp_path / "g.tif", values)
    assert overviews.build(path, normalise=False, smallest=8) == [2, 4]
    got = read_level(path, 0)
    means, _ = expected_level(values, valid, 2, normalise=False)
    np.testing.assert_allclose(got, means.astype(np.float32), atol=1e-6)  # (0, 0): the mean of its 3 valid children
    assert np.linalg.norm(got[:, 5, 5]) < 3.0  # a mean of unit-ish vectors is shorter: not re-normalised


def test_int16_codes_with_a_band_scale_are_averaged_as_values(tmp_path):
    scale = 1 / 127.5**2
    values = unit_field(4, 32, 32, seed=3)
    codes = np.rint(values / scale).astype(np.int16)
    codes[:, 3, 3] = -32768
    path = write(tmp_path / "i.tif", codes, gdal.GDT_Int16, nodata=-32768, scale=scale)
    overviews.build(path, normalise=True, smallest=8)
    valid = codes[0] != -32768
    means, ok = expected_level(codes.astype(np.float64) * scale, valid, 2, normalise=True)
    got = read_level(path, 0)
    assert got.dtype == np.int16 and ok.all()
    np.testing.assert_allclose(got * scale, means, atol=scale)


def test_a_small_raster_gets_no_overviews(tmp_path):
    path = write(tmp_path / "s.tif", unit_field(2, 100, 100))
    assert overviews.build(path, normalise=True) == []
    assert not overviews.has_overviews(path)


def test_a_cancel_leaves_the_file_without_overviews(tmp_path):
    from geoembed.loaders.errors import Cancelled

    path = write(tmp_path / "c.tif", unit_field(2, 64, 64))
    with pytest.raises(Cancelled):
        overviews.build(path, normalise=True, smallest=8, is_cancelled=lambda: True)
    assert not overviews.has_overviews(path)
    with pytest.raises(Cancelled):
        overviews.build(path, normalise=True, smallest=8, external=True, is_cancelled=lambda: True)
    assert not overviews.has_overviews(path) and list(tmp_path.iterdir()) == [path]


def test_the_view_reads_the_coarsest_level_with_a_pixel_per_screen_pixel(tmp_path):
    values = unit_field(2, 256, 256)
    path = write(tmp_path / "v.tif", values)
    overviews.build(path, normalise=True, smallest=16)  # x2 .. x16
    grid = Grid("EPSG:32631", 500000.0, 5000000.0, 10.0, 10.0, 256, 256)
    whole = Window(0, 0, 256, 256)
    assert overviews.view_level(path, whole, 100, 100) == (2, 0)
    assert overviews.view_level(path, whole, 60, 30) == (4, 1)
    assert overviews.view_level(path, Window(0, 0, 40, 40), 100, 100) == (1, None)  # zoomed in: full resolution
    got, valid, view_grid, factor = overviews.read_view(path, grid, Window(10, 20, 200, 100), 50, 25)
    assert factor == 4 and valid.all()
    level = read_level(path, 1)
    np.testing.assert_array_equal(got, level[:, 5:30, 2:53])  # whole level pixels under the window
    assert (view_grid.x0, view_grid.y0, view_grid.res_x, view_grid.width) == (500000.0 + 80, 5000000.0 - 200, 40.0, 51)


class MemoryRaster(EmbeddingRaster):
    def __init__(self, values, valid, block_size=None):
        self.values, self.valid = values, valid
        self.grid = Grid("EPSG:32631", 500000.0, 5000000.0, 10.0, 10.0, values.shape[2], values.shape[1])
        self.band_names = tuple(f"A{i:02d}" for i in range(values.shape[0]))
        self.provenance = Provenance("aef", "AEF")
        if block_size:
            self.block_size = block_size

    def read(self, window):
        rows, cols = slice(window.row, window.row + window.height), slice(window.col, window.col + window.width)
        return EmbeddingBlock(self.values[:, rows, cols], self.valid[rows, cols])

    def close(self):
        pass


@pytest.mark.parametrize("block_size", [None, 100])  # 100: blocks off the overview grid, built from the output after
def test_overviews_written_on_the_way_equal_those_built_from_the_output(tmp_path, block_size):
    from geoembed.loaders.raster.writer import write_geotiff

    values = unit_field(3, 700, 530, seed=5)
    valid = np.ones((700, 530), dtype=bool)
    valid[100:300, 200:203] = False
    raster = MemoryRaster(values, valid, block_size)
    tee = overviews.OverviewTee(raster, tmp_path / "t.tif", normalise=True, smallest=16)
    write_geotiff(tee, str(tmp_path / "t.tif"))
    assert tee.finish() == [2, 4, 8, 16, 32]
    assert tee.missed == (block_size is not None)
    assert (tmp_path / "t.tif.ovr").exists() == (block_size is None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tif"] + ([] if block_size else ["t.tif.ovr"])
    for index, factor in enumerate([2, 4, 8, 16, 32]):
        means, ok = expected_level(values, valid, factor, normalise=True)
        got = read_level(tmp_path / "t.tif", index)
        np.testing.assert_array_equal(got[0] == NODATA, ~ok)
        np.testing.assert_allclose(got[:, ok], means[:, ok], atol=1e-5)  # float32 sums of four children


def test_a_failed_write_leaves_no_overview_file(tmp_path):
    from geoembed.loaders.errors import Cancelled
    from geoembed.loaders.raster.writer import write_geotiff

    raster = MemoryRaster(unit_field(2, 600, 600), np.ones((600, 600), dtype=bool))
    tee = overviews.OverviewTee(raster, tmp_path / "f.tif", normalise=True, smallest=16)
    answers = iter([False, True])
    with pytest.raises(Cancelled):
        write_geotiff(tee, str(tmp_path / "f.tif"), is_cancelled=lambda: next(answers, True))
    tee.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output_type", ["float32", "int16"])
def test_load_with_overviews_gives_the_outputs_normalised_block_means(aef_mirror, aef_specs, tmp_path, monkeypatch, output_type):
    from geoembed.loaders.load import LoadRequest, run
    from tests.unit.helpers import QuietLog, find_spec, tile_path

    monkeypatch.setattr(overviews, "SMALLEST", 16)  # the fixture tile is small
    tile = tile_path(aef_mirror, find_spec(aef_specs, 2024, "31N"))
    out = tmp_path / "aef.tif"
    request = LoadRequest(output=str(out), product="aef", source=str(tile), overviews=True, output_type=output_type)
    run(request, QuietLog())
    dataset = gdal.Open(str(out))
    band = dataset.GetRasterBand(1)
    full = np.stack([dataset.GetRasterBand(b + 1).ReadAsArray() for b in range(dataset.RasterCount)]).astype(np.float64)
    nodata, scale = band.GetNoDataValue(), band.GetScale() or 1.0
    valid = ~(full == nodata).any(axis=0)
    assert band.GetOverviewCount() >= 2 and (~valid).any()
    for index in range(band.GetOverviewCount()):
        factor = round(dataset.RasterXSize / band.GetOverview(index).XSize)
        means, ok = expected_level(full * scale, valid, factor, normalise=True)
        got = read_level(out, index).astype(np.float64)
        np.testing.assert_array_equal((got == nodata).any(axis=0), ~ok)
        np.testing.assert_allclose(got[:, ok] * scale, means[:, ok], atol=1e-5 if scale == 1 else scale)
    dataset = None
    run(LoadRequest(output=str(out), product="aef", source=str(tile)), QuietLog())  # again, without overviews
    assert not overviews.has_overviews(out) and not (tmp_path / "aef.tif.ovr").exists()
