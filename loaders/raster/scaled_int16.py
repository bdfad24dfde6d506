"""AlphaEarth's exact 16-bit storage (geoembed:load OUTPUT_TYPE=int16): the int8 code q is stored as the term q * |q|
in an Int16 band with scale 1/127.5**2, so value = term * scale = sign(q) * (q / 127.5)**2, the de-quantised value.

float32(term) / 16256.25 rounds to the same float32 as GDAL's and QGIS's double term * scale, and as the int8 LUT, for
every code (tests/unit/test_load_write_speed.py checks all 256)."""

import numpy as np

TERM_DIVISOR = np.float32(127.5**2)  # 16256.25, exact in float32
INT16_SCALE = 1 / 127.5**2
INT16_NODATA = -32768  # no term reaches it: |q * |q|| <= 128 * 128 = 16384


def is_term_scale(scale, offset=0.0):
    """A band scale and offset of stored terms (as written, or as read back from a GeoTIFF's metadata)."""
    return offset == 0.0 and scale == INT16_SCALE


def term_values(terms):
    """Float32 values of int16 terms (no copy is kept of the input)."""
    values = terms.astype(np.float32)
    values /= TERM_DIVISOR
    return values
