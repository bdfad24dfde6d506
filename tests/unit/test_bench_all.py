"""bench_all's reading of the benches' lines: which carry a target, the fastest run, the spread, the memory peak."""

from bench.bench_all import figure_lines, summary

RUN_1 = [
    "read                5.0 s  peak   100 MiB | block-by-block GDAL read (baseline)",
    "similarity         12.0 s  peak   500 MiB | read      5.0 s | ratio   2.40x  target <= 3x       PASS",
    "memory similarity    500 MiB  target < 1536 MiB  PASS",
]
RUN_2 = [
    "similarity         16.0 s  peak   520 MiB | read      5.1 s | ratio   3.14x  target <= 3x       FAIL",
    "memory similarity    520 MiB  target < 1536 MiB  PASS",
]


def test_only_lines_with_a_verdict_are_figures():
    assert sorted(figure_lines(RUN_1)) == ["memory similarity", "similarity"]


def test_the_fastest_run_is_reported_with_its_own_baseline_and_the_spread():
    line = summary("similarity", [figure_lines(RUN_2)["similarity"], figure_lines(RUN_1)["similarity"]])
    assert "12.0 s" in line and "ratio   2.40x" in line and "PASS" in line and "FAIL" not in line
    assert line.endswith("[fastest of 2; spread 12.00-16.00 s]")


def test_memory_keeps_the_highest_peak():
    lines = [figure_lines(RUN_1)["memory similarity"], figure_lines(RUN_2)["memory similarity"]]
    assert "520 MiB" in summary("memory similarity", lines)
