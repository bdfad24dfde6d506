"""analysis.blas.matmul: NumPy's product, bit for bit, for every shape, memory order and float type the analyses use,
through SciPy's BLAS - also in a process where GSL's reference CBLAS shadows NumPy's (as inside Debian's QGIS)."""

import ctypes.util
import os
import subprocess
import sys

import numpy as np
import pytest

from geoembed.analysis import blas
from geoembed.analysis.blas import matmul
from tests import REPO

# (rows, inner, columns): gemm, tall and wide gemm, gemv both ways, a product below SMALL, an inner dimension of 1
SHAPES = [(300, 64, 200), (4000, 64, 3), (3, 64, 4000), (1, 64, 5000), (5000, 64, 1), (700, 7, 900), (8, 8, 8), (500, 1, 400)]
TYPES = [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64), (np.int64, np.float32)]


def layouts(values):
    """The same values as C-ordered, F-ordered and a slice of a larger array (rows with gaps, as a band range)."""
    padded = np.zeros((values.shape[0] + 3, values.shape[1] + 5), values.dtype)
    padded[2:-1, 1:-4] = values
    return {"C": np.ascontiguousarray(values), "F": np.asfortranarray(values), "slice": padded[2:-1, 1:-4]}


def operands(rows, inner, columns, types, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((rows, inner)) * 10).astype(types[0]), (rng.random((inner, columns)) * 10).astype(types[1])


def same(got, expected):
    return got.dtype == expected.dtype and got.shape == expected.shape and np.array_equal(got, expected)


@pytest.mark.parametrize("types", TYPES, ids=lambda t: f"{t[0].__name__}-{t[1].__name__}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_equals_numpy_for_every_order(shape, types):
    a0, b0 = operands(*shape, types)
    for a in layouts(a0).values():
        for b in layouts(b0).values():
            got = matmul(a, b)
            assert same(got, a @ b)
            assert got.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(300, 64), (64, 3000), (9, 4)])
def test_a_matrix_times_its_transpose_is_numpy_s_syrk(shape, dtype):
    a0, _ = operands(*shape, 1, (dtype, dtype))
    for a in layouts(a0).values():
        for left, right in ((a, a.T), (a.T, a), (a[: len(a) // 2], a[: len(a) // 2].T)):
            assert same(matmul(left, right), left @ right)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_dimensional_operands_and_strided_vectors(dtype):
    a, b = operands(4000, 64, 300, (dtype, dtype))
    vector = b[:, 7]  # strided: one column
    assert same(matmul(a, vector), a @ vector)
    assert same(matmul(a, vector.copy()), a @ vector.copy())
    assert same(matmul(a.T[:, :64].T.copy(), b), a.T[:, :64].T.copy() @ b)
    row = a[5]
    assert same(matmul(row, b), row @ b)
    assert same(matmul(a[:, 3], a), a[:, 3] @ a)  # a vector with gaps
    fortran = np.asfortranarray(a)
    assert same(matmul(fortran[:, 3], fortran), fortran[:, 3] @ fortran)
    assert same(matmul(b[:, 0], b[:, 1]), b[:, 0] @ b[:, 1])  # two vectors: NumPy's dot


def test_arrays_numpy_would_not_hand_to_blas_are_still_right():
    a, b = operands(400, 64, 300, (np.float32, np.float32))
    stepped, reversed_ = np.repeat(a, 2, axis=1)[:, ::2], b[::-1]
    np.testing.assert_allclose(matmul(stepped, b), a @ b, rtol=1e-5)
    np.testing.assert_allclose(matmul(a[:, ::-1], reversed_), a @ b, rtol=1e-5)


def test_empty_and_other_types_and_mismatches_behave_as_numpy():
    assert same(matmul(np.zeros((0, 64), np.float32), np.ones((64, 10), np.float32)), np.zeros((0, 10), np.float32))
    assert same(matmul(np.zeros((10, 0)), np.zeros((0, 10))), np.zeros((10, 10)))
    ints = np.arange(64 * 600).reshape(600, 64)
    assert same(matmul(ints, ints.T), ints @ ints.T)
    stacked = np.ones((2, 300, 64), np.float32)
    assert same(matmul(stacked, np.ones((64, 300), np.float32)), stacked @ np.ones((64, 300), np.float32))
    with pytest.raises(ValueError):
        matmul(np.ones((300, 64)), np.ones((65, 300)))


def test_large_products_go_through_scipy_and_small_ones_stay_with_numpy(monkeypatch):
    calls = []

    def spy(dtype, name):
        calls.append(name)
        return routine(dtype, name)

    routine = blas._routine
    monkeypatch.setattr(blas, "_routine", spy)
    a, b = operands(300, 64, 600, (np.float32, np.float32))
    matmul(a, b), matmul(a[0], b), matmul(a, a.T)
    assert [name for name in calls if name != "gemm"] == ["gemv", "syrk"]
    calls.clear()
    matmul(a[:4], b[:, :4])
    assert calls == []  # 4 x 64 x 4 multiply-adds: below SMALL


GSL_CBLAS = ctypes.util.find_library("gslcblas")
CHILD = """
import ctypes, sys
gsl = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)  # as the qgis executables load it: before NumPy
import numpy as np
sys.path.insert(0, sys.argv[2])
import tests  # noqa: F401  (puts the plugin on the path)
from geoembed.analysis.blas import matmul
from tests.unit.test_blas import cases
address = lambda function: ctypes.cast(function, ctypes.c_void_p).value
shadowed = address(ctypes.CDLL(None).cblas_sgemm) == address(gsl.cblas_sgemm)
np.savez(sys.argv[3], shadowed=shadowed, *[matmul(a, b) for a, b in cases()])
"""


def cases():
    """Products of each kind matmul makes: gemm (two orders, mixed types), syrk, gemv both ways."""
    a, b = operands(2000, 64, 600, (np.float32, np.float32), seed=3)
    a64, b64 = operands(300, 64, 500, (np.float64, np.float64), seed=4)
    return [(a, b), (np.asfortranarray(a), b), (a, b64[:, :300]), (a64.T, a64), (a64, a64.T), (a[7], b), (a, b[:, 2])]


@pytest.mark.skipif(GSL_CBLAS is None, reason="GSL's CBLAS (libgslcblas) is not installed")
def test_matmul_equals_numpy_where_gsl_cblas_shadows_numpy_s_blas(tmp_path):
    result = tmp_path / "products.npz"
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, GSL_CBLAS, str(REPO), str(result)], env=env, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    with np.load(result) as products:
        assert products["shadowed"]  # NumPy's cblas_sgemm is GSL's in the child, as in Debian's qgis_process
        for index, (a, b) in enumerate(cases()):
            assert same(products[f"arr_{index}"], a @ b), index
