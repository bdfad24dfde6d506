"""Inside `qgis_process.bin`, which links GSL's reference CBLAS, the BLAS functions analysis.blas.matmul calls (SciPy's
Fortran gemm/gemv) resolve to the optimised BLAS, not to GSL's: the dynamic linker's own record (LD_DEBUG=bindings) of
a geoembed:similarity run says where each symbol was bound. (NumPy's cblas_sgemm is bound to libgslcblas there, the
reason matmul exists.) Skipped where the linker writes no such record. One qgis_process run.
"""

import re

import pytest

from tests.e2e.helpers import json_of
from tests.e2e.test_analysis_cli import embedding_tile, run_args, write_points

# "binding file /.../scipy/linalg/_fblas....so [0] to /lib/x86_64-linux-gnu/libblas.so.3 [0]: normal symbol `sgemv_'"
BINDING = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `([sd]gem[mv]_)'")


def test_similarity_s_products_do_not_bind_to_gsl_cblas(qgis_process, aef_mirror, aef_specs, tmp_path):
    tile = embedding_tile(aef_mirror, aef_specs, tmp_path)
    centres = tile.safe_centres()
    query = write_points(tmp_path / "query.geojson", [(centres[2], {"id": 0})])
    record = tmp_path / "ld" / "bindings"
    record.parent.mkdir()
    completed = qgis_process(
        *run_args("similarity", INPUT=tile.path, QUERY=query, K=0, OUTPUT=tmp_path / "heat.tif"),
        env_extra={"LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": record},
    )
    json_of(completed)
    lines = [line for path in record.parent.iterdir() for line in path.read_text(errors="replace").splitlines()]
    if not any("binding file" in line for line in lines):
        pytest.skip("the dynamic linker wrote no LD_DEBUG=bindings record here")
    gemm = [match.groups() for match in map(BINDING.search, lines) if match and "_fblas" in match.group(1)]
    assert gemm, "SciPy's BLAS (analysis.blas.matmul's) was not loaded by the similarity run"
    assert not [target for _, target, _ in gemm if "gslcblas" in target], gemm
