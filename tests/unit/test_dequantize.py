"""AEF de-quantisation: ((q / 127.5) ** 2) * sign(q), -128 = nodata in every band (formats.md §1.2)."""

import numpy as np
import pytest

from geoembed.loaders.products import aef
from tests.fixtures.aef import sample_specs
from tests.unit.helpers import dequant_formula, raw_codes, tile_path

ALL_CODES = np.arange(-128, 128, dtype=np.int16).astype(np.int8)


def test_every_code_matches_the_formula():
    got = aef.dequantize(ALL_CODES)
    assert got.dtype == np.float32
    assert got.shape == (256,)
    # float32 of the float64 formula: relative error below float32 epsilon
    np.testing.assert_allclose(got.astype(np.float64), dequant_formula(ALL_CODES.astype(np.float64)), rtol=1e-7, atol=0)


def test_known_values():
    assert float(aef.dequantize(np.int8(127))) == pytest.approx(0.99216, abs=5e-5)
    assert float(aef.dequantize(np.int8(127))) == pytest.approx((127 / 127.5) ** 2, rel=1e-6)
    assert float(aef.dequantize(np.int8(-127))) == pytest.approx(-0.99216, abs=5e-5)
    assert float(aef.dequantize(np.int8(0))) == 0.0
    assert float(aef.dequantize(np.int8(1))) == pytest.approx(1 / 127.5**2, rel=1e-6)
    # not the (wrong) linear v / 127 mapping, which gives 1.0 and 0.5
    assert float(aef.dequantize(np.int8(127))) != pytest.approx(1.0, abs=1e-3)
    assert float(aef.dequantize(np.int8(64))) == pytest.approx((64 / 127.5) ** 2, rel=1e-6)


@pytest.mark.parametrize(
    "codes",
    [127, -64, [-127, 0, 127], np.array([-127, -1, 0, 1, 127], dtype=np.int16), np.array([[5, -5]], dtype=np.int32)],
    ids=["python-int", "python-negative-int", "list", "int16-array", "int32-array"],
)
def test_dequantize_accepts_codes_of_any_integer_type(codes):
    """Codes given as Python ints, lists or wider integer arrays must give the same values, one per code."""
    got = np.asarray(aef.dequantize(codes))
    assert got.shape == np.shape(codes)
    np.testing.assert_allclose(got.astype(np.float64), dequant_formula(codes), rtol=1e-6, atol=0)


def test_sign_symmetry_and_monotonic():
    positive = np.arange(1, 128, dtype=np.int16).astype(np.int8)
    np.testing.assert_array_equal(aef.dequantize(-positive), -aef.dequantize(positive))
    values = aef.dequantize(np.arange(-127, 128, dtype=np.int16).astype(np.int8))
    assert np.all(np.diff(values) > 0)
    assert values.min() >= -1.0 and values.max() <= 1.0


def test_shape_is_kept():
    codes = np.arange(-100, 110, dtype=np.int16).astype(np.int8).reshape(3, 7, 10)
    got = aef.dequantize(codes)
    assert got.shape == (3, 7, 10)
    np.testing.assert_allclose(got, dequant_formula(codes), rtol=1e-6)


def test_quantize_inverts_dequantize_on_every_valid_code():
    codes = np.arange(-127, 128, dtype=np.int16).astype(np.int8)
    back = aef.quantize(aef.dequantize(codes))
    assert back.dtype == np.int8
    np.testing.assert_array_equal(back, codes)


def test_round_trip_error_bound():
    values = np.linspace(-1.0, 1.0, 20001)
    codes = aef.quantize(values)
    assert codes.min() >= -127 and codes.max() <= 127  # -128 is reserved for nodata
    error = np.abs(aef.dequantize(codes).astype(np.float64) - values)
    # rounding moves s = sqrt|v| * 127.5 by at most 1/2, so |v| moves by at most (s + 1/4) / 127.5**2
    bound = (np.sqrt(np.abs(values)) * 127.5 + 0.25) / 127.5**2 + 1e-6
    assert np.all(error <= bound)
    assert error.max() < 0.0080
    # beyond [-1, 1] the codes saturate instead of wrapping or hitting the nodata code
    np.testing.assert_array_equal(aef.quantize([-5.0, -1.0, 1.0, 5.0]), np.array([-127, -127, 127, 127], dtype=np.int8))


def test_valid_mask_marks_nodata_in_any_band():
    rng = np.random.default_rng(7)
    codes = rng.integers(-127, 128, size=(64, 5, 7)).astype(np.int8)
    codes[0, 0, 0] = -128  # first band only
    codes[63, 4, 6] = -128  # last band only
    codes[:, 2, 3] = -128  # every band
    codes[17, 1, 5] = -128
    expected = np.ones((5, 7), dtype=bool)
    for row, col in [(0, 0), (4, 6), (2, 3), (1, 5)]:
        expected[row, col] = False
    mask = aef.valid_mask(codes)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)
    assert aef.valid_mask(np.full((64, 2, 2), 127, dtype=np.int8)).all()
    assert aef.valid_mask(np.full((64, 2, 2), -127, dtype=np.int8)).all()


def test_fixture_vectors_dequantise_to_unit_length(aef_mirror):
    spec = next(s for s in sample_specs() if s.year == 2024 and s.zone == "32N")
    codes = raw_codes(tile_path(aef_mirror, spec))
    assert codes.dtype == np.int8 and codes.shape == (64, spec.height, spec.width)
    values = aef.dequantize(codes).astype(np.float64)
    norms = np.linalg.norm(values, axis=0)
    assert aef.valid_mask(codes).all()
    # per-component error <= sqrt|v| / 127.5, so the norm moves by at most sqrt(sum|v|) / 127.5 <= sqrt(8) / 127.5
    assert np.all(np.abs(norms - 1.0) < 0.025), (norms.min(), norms.max())
    # the linear v / 127 mapping would not give unit vectors
    linear = np.linalg.norm(codes.astype(np.float64) / 127.0, axis=0)
    assert np.abs(linear - 1.0).max() > 0.1
