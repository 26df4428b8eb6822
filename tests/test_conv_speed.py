"""The benchmark's own logic (benchmarks/conv_speed.py), on tiny shapes, without TensorFlow.

Speed is measured by the benchmark, never asserted here: these tests check what it
computes from the times (ratios, means, tables, files), not the times themselves.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from benchmarks import conv_speed
from benchmarks.conv_speed import Case, NumPyReference, Row
from companion import numpy_conv
from companion.arithmetic import conv_output_shape

TINY = [
    Case("tiny-3x3", (2, 6, 7, 3), (3, 3, 3, 4), 1, "SAME"),
    Case("tiny-grouped-s2", (1, 9, 8, 4), (2, 2, 2, 6), 2, "VALID"),
]


def test_the_suite_covers_what_the_issue_lists():
    suite = conv_speed.SUITE
    geometries = [case.geometry for case in suite]
    assert {case.filter_shape[:2] for case in suite} >= {(1, 1), (3, 3), (5, 5), (7, 7)}
    assert {case.strides for case in suite} == {1, 2}
    assert {case.padding for case in suite} == {"SAME", "VALID"}
    batches = [case.input_shape[0] for case in suite]
    channels = [case.input_shape[3] for case in suite]
    assert (min(batches), max(batches), min(channels), max(channels)) == (1, 64, 1, 256)
    assert any(g.groups > 1 for g in geometries)
    assert all(case.input_shape[3] % case.filter_shape[2] == 0 for case in suite)
    assert len({case.name for case in suite}) == len(suite)
    assert set(conv_speed.QUICK) <= {case.name for case in suite}


@pytest.mark.parametrize("case", [*TINY, *conv_speed.SUITE], ids=lambda c: c.name)
def test_flops_count_the_direct_sum(case):
    batch, out_h, out_w, out_channels = conv_output_shape(
        case.input_shape, case.filter_shape, case.strides, case.padding
    )
    kh, kw, depth, _ = case.filter_shape
    # Each output sums kh·kw·depth products: one multiplication and one addition each.
    assert case.flops == 2 * batch * out_h * out_w * out_channels * kh * kw * depth


def test_case_arrays_and_label():
    case = TINY[1]
    x, w, dy = case.arrays()
    assert [a.shape for a in (x, w, dy)] == [(1, 9, 8, 4), (2, 2, 2, 6), (1, 4, 4, 6)]
    assert {a.dtype for a in (x, w, dy)} == {np.dtype(np.float32)}
    again = case.arrays()
    assert all(np.array_equal(a, b) for a, b in zip((x, w, dy), again, strict=True))
    assert case.shape == "1x9x8x4 * 2x2x2x6 s2 VALID g2"


def test_geometric_mean():
    assert math.isclose(conv_speed.geometric_mean([4.0, 1.0, 0.25, 1.0]), 1.0)
    assert math.isclose(conv_speed.geometric_mean([2.0, 8.0]), 4.0)
    for bad in ([], [1.0, 0.0], [-1.0]):
        with pytest.raises(ValueError, match=r"^values: "):
            conv_speed.geometric_mean(bad)


def test_run_and_summaries_with_a_numpy_reference():
    rows = conv_speed.run(TINY, NumPyReference(), methods=("auto", "im2col"), repeats=2)
    assert len(rows) == len(TINY) * len(conv_speed.OPERATIONS) * 2
    for row in rows:
        case = next(c for c in TINY if c.name == row.case)
        assert row.gflop == case.flops / 1e9
        assert row.median_ms > 0 and row.reference_ms > 0 and row.ratio > 0
        assert math.isclose(row.gflops, case.flops / (row.median_ms / 1e3) / 1e9)
        chooser = {
            "forward": numpy_conv.choose_method,
            "backprop_input": numpy_conv.choose_input_gradient,
            "backprop_filter": numpy_conv.choose_filter_gradient,
        }[row.operation]
        expected = chooser(case.geometry) if row.method == "auto" else "im2col"
        assert row.choice == expected
        measured = row.method == "auto" and row.operation == "forward"
        assert (row.peak_mib is not None) == measured
        if measured:
            output = 4 * np.prod(case.geometry.output_shape) / 2**20
            assert row.output_mib == output and row.peak_mib >= output
            assert row.memory_ratio == row.peak_mib / (row.input_mib + 2 * output)
    summaries = conv_speed.summarize(rows)
    assert [s.operation for s in summaries] == list(conv_speed.OPERATIONS)
    forward = [r.ratio for r in rows if r.method == "auto" and r.operation == "forward"]
    assert math.isclose(summaries[0].geometric_mean, conv_speed.geometric_mean(forward))
    assert summaries[0].worst == max(forward)
    with pytest.raises(ValueError, match=r"^methods: "):
        conv_speed.run(TINY, NumPyReference(), methods=("fft",), repeats=1)
    with pytest.raises(ValueError, match=r"^operations: "):
        conv_speed.run(TINY, NumPyReference(), operations=("backward",), repeats=1)


def test_products_alone_are_timed_and_summarized_as_a_method():
    rows = conv_speed.run(
        TINY, NumPyReference(), methods=("auto", conv_speed.PRODUCTS), repeats=2, memory=False
    )
    products = [r for r in rows if r.method == conv_speed.PRODUCTS]
    assert len(products) == len(TINY) * len(conv_speed.OPERATIONS)
    assert all(r.choice == "products" and r.ratio > 0 for r in products)
    summaries = conv_speed.summarize(rows, conv_speed.PRODUCTS)
    assert [s.operation for s in summaries] == list(conv_speed.OPERATIONS)
    # The products run on the package's threads, whatever their number.
    for case in TINY:
        for operation in conv_speed.OPERATIONS:
            with numpy_conv.settings(threads=2, block_bytes=64):  # many blocks
                assert conv_speed.products_alone(case, operation)() is None


def row(case, operation, ratio):
    return Row(case, "shape", operation, "auto", "taps", 1.0, 2.0, 1.0, 0.5, ratio)


def test_a_missing_reference_is_reported_not_averaged():
    rows = [row("a", "forward", 2.0), row("b", "forward", None), row("c", "forward", 0.5)]
    [summary] = conv_speed.summarize(rows)
    assert (summary.shapes, summary.geometric_mean, summary.worst) == (2, 1.0, 2.0)
    assert (summary.worst_case, summary.missing) == ("a", ["b"])
    table = conv_speed.format_table(rows, [summary], "ref")
    assert "n/a" in table and "no reference for b" in table and "worst 2.00 (a)" in table


def test_table_csv_and_json(tmp_path):
    rows = conv_speed.run(TINY[:1], NumPyReference(), repeats=1)
    summaries = conv_speed.summarize(rows)
    table = conv_speed.format_table(rows, summaries, "numpy im2col")
    assert "GFLOP/s" in table and "Peak NumPy memory" in table and "geometric mean" in table
    lines = [line for line in table.splitlines() if line.startswith("tiny-3x3 ")]
    assert len(lines) == len(conv_speed.OPERATIONS) + 1  # + the memory table's line
    assert table.count("worst") == len(conv_speed.OPERATIONS)
    conv_speed.write_csv(rows, tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert [r["operation"] for r in records] == list(conv_speed.OPERATIONS)
    assert float(records[0]["ratio"]) == rows[0].ratio
    info = conv_speed.machine_info("numpy im2col")
    conv_speed.write_json(rows, summaries, info, tmp_path / "speed.json")
    document = json.loads((tmp_path / "speed.json").read_text(encoding="utf-8"))
    assert set(document) == {"machine", "summary", "rows"}
    assert document["machine"]["numpy"] == np.__version__ and "blas" in document["machine"]
    assert document["rows"][0]["memory_ratio"] == rows[0].memory_ratio


def test_select_and_the_command_line(tmp_path, capsys):
    assert [c.name for c in conv_speed.select(None, quick=True)] == list(conv_speed.QUICK)
    assert len(conv_speed.select(None, quick=False)) == len(conv_speed.SUITE)
    assert [c.name for c in conv_speed.select(["lenet"], quick=False)] == ["lenet-conv1"]
    with pytest.raises(ValueError, match=r"^cases: "):
        conv_speed.select(["no-such-layer"], quick=False)
    status = conv_speed.main(
        [
            "--reference=numpy",
            "--cases=lenet",
            "--repeats=1",
            "--operations=forward",
            "--threads=1",
            f"--csv={tmp_path / 'speed.csv'}",
            f"--json={tmp_path / 'speed.json'}",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0 and "lenet-conv1" in printed and "1 shapes, 1 rounds" in printed
    # A run limited to one thread names its files so (make bench runs both).
    assert (tmp_path / "speed-threads1.csv").exists()
    assert (tmp_path / "speed-threads1.json").exists()
