"""Matrix products that reach the machine's optimised BLAS inside QGIS as well as in plain Python.

Debian's qgis and qgis_process executables link GSL, and with it GSL's reference CBLAS (libgslcblas). Being loaded
with the executable, its cblas_* functions come first in the process's symbol lookup, so NumPy's `a @ b` binds to
them instead of OpenBLAS: a single-threaded textbook loop, many times slower. SciPy calls BLAS through its Fortran
names (sgemm_, sgemv_, ...), which GSL does not define, so they still reach OpenBLAS. matmul() uses them for the
large float products, making the very BLAS call NumPy makes (gemm, syrk for a matrix times its own transpose, gemv
when one side is a vector), so its results equal NumPy's bit for bit wherever NumPy reaches the same BLAS.
"""

import functools
import os

import numpy as np

_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
# Multiply-adds below which NumPy's own call is cheaper than the ~10 us of SciPy's wrapper, even under GSL's BLAS.
SMALL = 1 << 15
# GEOEMBED_BLAS=numpy sends every product to NumPy's `a @ b`, as before matmul existed (bench/bench_blas.py's baseline).
NUMPY_ONLY = os.environ.get("GEOEMBED_BLAS", "").lower() == "numpy"


@functools.cache
def _routine(dtype, name):
    try:
        from scipy.linalg import blas
    except ImportError:  # scikit-learn brings SciPy; without it NumPy's product is still right, only slower
        return None
    return getattr(blas, _PREFIX[dtype] + name)


def _column_major(matrix):
    """(F-ordered operand, transposed?) for BLAS: matrix itself, or its transpose's F view when its rows are the
    contiguous axis (NumPy picks the transposition the same way; SciPy copies an operand only if it has gaps)."""
    if matrix.strides[1] == matrix.itemsize:
        return matrix.T, True
    return matrix, False


def _is_transpose(a, b):
    """True when b is a view of a transposed: NumPy computes a @ a.T and a.T @ a with syrk."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape[::-1]
        and a.strides == b.strides[::-1]
    )


def _gemv(matrix, vector):
    """matrix @ vector (1-D) through BLAS gemv, given a strided vector as NumPy gives it (OpenBLAS's gemv rounds
    differently when the vector has gaps): a contiguous view from its first to its last element, and the step."""
    operand, transposed = _column_major(matrix)
    step, remainder = divmod(vector.strides[0], vector.itemsize)
    if remainder or step < 1:
        vector, step = np.ascontiguousarray(vector), 1  # NumPy does not call BLAS for these
    if step > 1:
        vector = np.lib.stride_tricks.as_strided(vector, ((len(vector) - 1) * step + 1,), (vector.itemsize,))
    return _routine(matrix.dtype, "gemv")(1.0, operand, vector, incx=step, trans=int(transposed))


def _symmetric(lower, band=512):
    """The F-ordered square whose lower half syrk computed, its upper half filled in place (as NumPy fills the upper
    half from its lower one), a band of columns at a time so that no temporary is as large as the square; the
    transpose, equal to it, is C-ordered."""
    for start in range(0, len(lower), band):
        stop = min(start + band, len(lower))
        block = lower[start:stop, start:stop]
        above = np.triu_indices(stop - start, 1)
        block[above] = block.T[above]
        lower[start:stop, stop:] = lower[stop:, start:stop].T
    return lower.T


def _gemm(a, b):
    """a @ b (2-D) through BLAS syrk or gemm."""
    if _is_transpose(a, b):
        operand, transposed = _column_major(a)  # a a^T = operand^T operand when operand = a^T
        return _symmetric(_routine(a.dtype, "syrk")(1.0, operand, trans=int(transposed), lower=1))
    # gemm is column-major: C = A B is computed as C^T = B^T A^T, whose operands are F-ordered views of C-ordered
    # arrays (no copy), and the F-ordered result's transpose is C-ordered.
    left, trans_left = _column_major(b.T)
    right, trans_right = _column_major(a.T)
    return _routine(a.dtype, "gemm")(1.0, left, right, trans_a=trans_left, trans_b=trans_right).T


def matmul(a, b):
    """a @ b for float arrays of 1 or 2 dimensions (not both 1-D), equal to NumPy's product (both are BLAS calls)."""
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.result_type(a, b)
    if NUMPY_ONLY or not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2) or a.ndim + b.ndim < 3 or dtype not in _PREFIX:
        return a @ b
    rows, inner = a.shape if a.ndim == 2 else (1, a.shape[0])
    columns = b.shape[1] if b.ndim == 2 else 1
    if inner != b.shape[0] or rows * inner * columns < SMALL or min(rows, inner, columns) == 0 or inner == 1:
        return a @ b  # NumPy's messages for mismatched shapes; NumPy's own loops where it skips BLAS too
    if rows == 1 and columns == 1 or _routine(dtype, "gemm") is None:
        return a @ b  # a dot product (small), or no SciPy
    # NumPy casts a mixed-type operand into a C-ordered copy, which BLAS uses untransposed: so do we
    a, b = (x if x.dtype == dtype else np.ascontiguousarray(x, dtype=dtype) for x in (a, b))
    if rows == 1:  # vector @ matrix = (matrix^T @ vector)
        product = _gemv(b.T, a.reshape(-1))
        return product if a.ndim == 1 else product[np.newaxis, :]
    if columns == 1:
        product = _gemv(a, b.reshape(-1))
        return product if b.ndim == 1 else product[:, np.newaxis]
    return _gemm(a, b)
