"""geoembed:load's write path at the write floor: the two-pass de-quantiser equals the 256-entry lookup table for every
code, the next block is produced in a background thread while the current one is written (same bytes as a serial
write, every window once, in order, one at a time), a cancel waits for the block in flight, a whole-tile load
reads every source pixel exactly once (a mosaic in pairs of block rows, so that GDAL decompresses each source tile
once), and YEARS with OUTPUT_TYPE=int16 writes every year's exact Int16 terms."""

import os
import threading
import time

import numpy as np
import pytest
from osgeo import gdal

from geoembed.loaders.errors import Cancelled, GeoEmbedError
from geoembed.loaders.load import LoadRequest, output_storage, plan
from geoembed.loaders.model import EmbeddingBlock
from geoembed.loaders.products import aef
from geoembed.loaders.raster import writer
from geoembed.loaders.raster.grid import Grid
from geoembed.loaders.raster.scaled_int16 import INT16_NODATA, INT16_SCALE
from geoembed.loaders.years import run_years
from tests.unit.helpers import QuietLog, find_spec, raw_codes, tile_path
from tests.unit.test_load_write_speed import ALL_CODES, bits

BLOCK = 32  # several blocks on the small fixture tile, so that the background producer has work to overlap


def test_terms_of_every_code_are_q_times_abs_q_including_the_nodata_code():
    expected = ALL_CODES.astype(np.int32) * np.abs(ALL_CODES.astype(np.int32))
    terms = aef.terms(ALL_CODES)
    assert terms.dtype == np.int16 and terms[0] == -16384  # -128: |q| taken as uint8 128, not int8 -128
    np.testing.assert_array_equal(terms, expected)


def test_dequantiser_equals_the_lookup_table_for_every_code_in_any_shape_and_integer_type():
    lut = aef.DEQUANT_LUT[ALL_CODES.view(np.uint8)]
    np.testing.assert_array_equal(bits(aef.dequantize(ALL_CODES)), bits(lut))
    cube = np.tile(ALL_CODES, 3 * 5).reshape(3, 16, 80)  # every code at many positions of a (bands, rows, cols) block
    np.testing.assert_array_equal(bits(aef.dequantize(cube)), bits(aef.DEQUANT_LUT[cube.view(np.uint8)]))
    np.testing.assert_array_equal(bits(aef.dequantize(ALL_CODES.view(np.uint8))), bits(lut))  # PIXELTYPE=SIGNEDBYTE
    assert aef.dequantize(cube).dtype == np.float32


@pytest.fixture(scope="module")
def tile(aef_mirror, aef_specs):
    spec = find_spec(aef_specs, 2024, "31N")
    assert spec.nodata_boxes
    return tile_path(aef_mirror, spec)


def _planned(tile, output, output_type="float32"):
    request = LoadRequest(output=str(output), product="aef", source=str(tile), output_type=output_type)
    product_id, raster = plan(request, QuietLog())
    return raster, output_storage(request, product_id, raster)


@pytest.mark.parametrize("output_type", ["float32", "int16"])
def test_writing_ahead_gives_the_serial_writes_bytes(tile, tmp_path, output_type):
    raster, storage = _planned(tile, tmp_path / "a.tif", output_type)
    try:
        assert len(list(raster.grid.blocks(BLOCK))) > 4
        writer.write_geotiff(raster, str(tmp_path / "ahead.tif"), block=BLOCK, storage=storage)  # ahead
        storage = storage or writer.Storage(read=raster.read)
        spec = writer.OutputSpec(str(tmp_path / "serial.tif"), raster.band_names, storage.data_type, storage.nodata)
        spec.scale, read = storage.scale, storage.read
        writer.write_rasters(raster.grid, [spec], lambda window: [read(window)], block=BLOCK, ahead=False)
    finally:
        raster.close()
    ahead, serial = gdal.Open(str(tmp_path / "ahead.tif")), gdal.Open(str(tmp_path / "serial.tif"))
    assert ahead.GetRasterBand(1).DataType == serial.GetRasterBand(1).DataType
    np.testing.assert_array_equal(ahead.ReadAsArray().view(np.uint8), serial.ReadAsArray().view(np.uint8))


class Recorder:
    """produce(window) that records the order, the threads and how many run at once."""

    def __init__(self, slow_window=None):
        self.windows, self.threads, self.running, self.most, self.finished = [], set(), 0, 0, 0
        self.lock = threading.Lock()
        self.slow_window, self.slow_started = slow_window, threading.Event()

    def __call__(self, window):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.windows.append(window)
            self.threads.add(threading.get_ident())
        if window == self.slow_window:
            self.slow_started.set()
            time.sleep(0.05)  # still in flight when the writer sees the cancel
        values = np.full((2, window.height, window.width), window.row * 1000 + window.col, dtype=np.float32)
        with self.lock:
            self.running -= 1
            self.finished += 1
        return [EmbeddingBlock(values, np.ones((window.height, window.width), dtype=bool))]


GRID = Grid("EPSG:32631", 600000.0, 4980000.0, 10.0, 10.0, 100, 70)


def test_ahead_produces_every_window_once_in_order_one_at_a_time_off_the_main_thread(tmp_path):
    recorder = Recorder()
    spec = writer.OutputSpec(str(tmp_path / "r.tif"), ("a", "b"))
    writer.write_rasters(GRID, [spec], recorder, block=BLOCK, ahead=True)
    windows = list(GRID.blocks(BLOCK))
    assert recorder.windows == windows and recorder.most == 1
    assert threading.get_ident() not in recorder.threads
    values = gdal.Open(spec.path).ReadAsArray()
    for window in windows:
        part = values[:, window.row : window.row + window.height, window.col : window.col + window.width]
        assert (part == window.row * 1000 + window.col).all()


def test_cancel_while_writing_ahead_waits_for_the_block_in_flight_and_leaves_nothing(tmp_path):
    recorder = Recorder(slow_window=list(GRID.blocks(BLOCK))[1])
    answers = iter([False, False])  # before producing the first and the second window

    def is_cancelled():  # then, before writing the first: cancelled once the second is being produced
        answer = next(answers, None)
        return recorder.slow_started.wait(30) if answer is None else answer

    spec = writer.OutputSpec(str(tmp_path / "c.tif"), ("a", "b"))
    with pytest.raises(Cancelled):
        writer.write_rasters(GRID, [spec], recorder, is_cancelled=is_cancelled, block=BLOCK, ahead=True)
    assert recorder.running == 0 and recorder.finished == len(recorder.windows) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_produce_error_reaches_the_caller_and_leaves_nothing(tmp_path):
    def produce(window):
        if window.row > 0:
            raise ValueError("broken block")
        return Recorder()(window)

    spec = writer.OutputSpec(str(tmp_path / "e.tif"), ("a", "b"))
    with pytest.raises(ValueError, match="broken block"):
        writer.write_rasters(GRID, [spec], produce, block=BLOCK, ahead=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output_type", ["float32", "int16"])
def test_a_whole_tile_load_reads_every_source_byte_once(tile, tmp_path, monkeypatch, output_type):
    windows = []
    read_window = aef.read_window

    def counted(dataset, location, col, row, width, height, **options):
        windows.append((col, row, width, height))
        return read_window(dataset, location, col, row, width, height, **options)

    monkeypatch.setattr(aef, "read_window", counted)
    raster, storage = _planned(tile, tmp_path / "w.tif", output_type)
    try:
        writer.write_geotiff(raster, str(tmp_path / "w.tif"), block=BLOCK, storage=storage)
    finally:
        raster.close()
    codes = raw_codes(tile)
    bands, height, width = codes.shape
    assert sum(w * h for _, _, w, h in windows) * bands == codes.size  # bytes read: each int8 value once
    covered = np.zeros((height, width), dtype=int)
    for col, row, w, h in windows:
        covered[row : row + h, col : col + w] += 1
    assert (covered == 1).all()


YEARS_EXTENT = (5.976, 44.99, 6.03, 45.02)  # lon/lat across 6°E: the 2023 tile (31N) covers only its west part


def test_years_with_int16_write_every_years_terms_that_read_back_as_the_float32_years(aef_mirror, tmp_path):
    index = str(aef_mirror / "v1" / "annual" / "aef_index.parquet")
    outputs = {}
    for output_type in ("float32", "int16"):
        request = LoadRequest(output=str(tmp_path / output_type / "aef.tif"), source=index, extent=YEARS_EXTENT)
        request.output_type = output_type
        outputs[output_type] = [result.output for result in run_years(request, [2023, 2024], QuietLog())]
    assert [os.path.basename(path) for path in outputs["int16"]] == ["aef_2023.tif", "aef_2024.tif"]
    for float_path, int_path in zip(outputs["float32"], outputs["int16"]):
        ints, floats = gdal.Open(int_path), gdal.Open(float_path)
        assert ints.GetGeoTransform() == floats.GetGeoTransform()
        assert ints.GetRasterBand(1).DataType == gdal.GDT_Int16 and ints.GetRasterBand(64).GetScale() == INT16_SCALE
        terms, values = ints.ReadAsArray(), floats.ReadAsArray()
        valid = terms != INT16_NODATA
        np.testing.assert_array_equal(valid, values != -9999.0)
        np.testing.assert_array_equal(bits(terms[valid] * INT16_SCALE), bits(values[valid]))
        assert valid.any() and not valid.all()  # the 2023 tile covers only part of the extent


def test_years_with_int16_for_another_product_is_refused_before_anything_is_read(tmp_path, tile):
    request = LoadRequest(output=str(tmp_path / "t.tif"), product="tessera", source=str(tile.parent), output_type="int16")
    with pytest.raises(GeoEmbedError, match="OUTPUT_TYPE=int16 is for AlphaEarth"):
        run_years(request, [2023, 2024], QuietLog())
    assert list(tmp_path.iterdir()) == []


def test_row_pairs_order_is_a_permutation_that_reads_each_two_by_two_group_in_a_row():
    grid = Grid("EPSG:32631", 600000.0, 4980000.0, 10.0, 10.0, 100, 150)  # 4 x 5 blocks of 32: an odd last row
    windows = list(grid.blocks(BLOCK))
    ordered = writer.in_row_pairs(windows)
    assert sorted(ordered, key=lambda w: (w.row, w.col)) == windows and len(set(ordered)) == len(windows)
    cells = [(w.row // BLOCK, w.col // BLOCK) for w in ordered]
    assert cells[:4] == [(0, 0), (1, 0), (0, 1), (1, 1)]  # a source tile of 2 x 2 blocks: four windows in a row
    assert cells[-4:] == [(4, 0), (4, 1), (4, 2), (4, 3)]  # the last, unpaired row: west to east


def test_a_load_writes_a_mosaic_in_row_pairs_with_the_same_bytes(tile, tmp_path, monkeypatch):
    from geoembed.loaders.load import write_order

    raster, _ = _planned(tile, tmp_path / "o.tif")
    windows = []
    read = raster.read
    monkeypatch.setattr(raster, "read", lambda window: (windows.append(window), read(window))[1])
    try:
        assert write_order(raster) is writer.in_row_pairs and write_order(Recorder()) is None
        writer.write_geotiff(raster, str(tmp_path / "pairs.tif"), block=BLOCK, order=write_order(raster))
        assert windows == writer.in_row_pairs(list(raster.grid.blocks(BLOCK)))
        writer.write_geotiff(raster, str(tmp_path / "rows.tif"), block=BLOCK)
    finally:
        raster.close()
    pairs, rows = gdal.Open(str(tmp_path / "pairs.tif")).ReadAsArray(), gdal.Open(str(tmp_path / "rows.tif")).ReadAsArray()
    np.testing.assert_array_equal(pairs.view(np.uint32), rows.view(np.uint32))
