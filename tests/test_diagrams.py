"""companion.diagrams draws what companion.padding, the NumPy twin and tf.nn.conv2d compute.

The diagrams are drawn from pure data functions (window positions, padded cells, output
sizes, im2col rows, gradient taps, group connections, summation orders), so these tests
check the data, not the images:

- against companion.padding and companion.numpy_conv, with hypothesis over a broad range
  of geometries (input 1..12, kernel 1..5, strides 1..3, dilations 1..3, VALID, SAME and
  explicit pads);
- against tf.nn.conv2d, in one TensorFlow child process (tests/tf_worker.py, reference
  kernels) that convolves an index-coded input with one-hot kernels: each output channel
  then names the input pixel one tap read, 0 for a zero of padding.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import arithmetic, diagrams, numerics, numpy_conv


@st.composite
def geometries(draw) -> dict:
    kind = draw(st.sampled_from(["SAME", "VALID", "explicit"]))
    pad = kind
    if kind == "explicit":
        pad = [[0, 0], [draw(st.integers(0, 3)), draw(st.integers(0, 3))]]
        pad += [[draw(st.integers(0, 3)), draw(st.integers(0, 3))], [0, 0]]
    case = {
        "input_size": (draw(st.integers(1, 12)), draw(st.integers(1, 12))),
        "kernel_size": (draw(st.integers(1, 5)), draw(st.integers(1, 5))),
        "strides": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
        "dilations": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
        "padding": pad,
    }
    try:
        arithmetic.conv_geometry(
            (1, *case["input_size"], 1),
            (*case["kernel_size"], 1, 1),
            case["strides"],
            pad,
            dilations=case["dilations"],
        )
    except ValueError:
        case["invalid"] = True  # the kernel does not fit: TensorFlow refuses it too
    return case


def _spatial_pad(pad, axis):
    return pad if isinstance(pad, str) else tuple(pad[axis + 1])


@settings(max_examples=300, deadline=None)
@given(geometries())
def test_layout_matches_padding_and_the_numpy_twin(case):
    arguments = {k: v for k, v in case.items() if k != "invalid"}
    if case.get("invalid"):
        with pytest.raises(ValueError):
            diagrams.window_layout(**arguments)
        return
    layout = diagrams.window_layout(**arguments)
    for axis in (0, 1):
        in_size, k = case["input_size"][axis], case["kernel_size"][axis]
        s, d = case["strides"][axis], case["dilations"][axis]
        pad = _spatial_pad(case["padding"], axis)
        assert layout.pads[axis] == arithmetic.resolve_pads(in_size, k, s, d, pad)
        assert layout.output_size[axis] == arithmetic.output_size(in_size, k, s, d, pad)
    # Padded cells: exactly the pads' rows and columns around the input.
    (top, bottom), (left, right) = layout.pads
    h, w = case["input_size"]
    assert layout.padding_mask.shape == (h + top + bottom, w + left + right)
    assert (~layout.padding_mask).sum() == h * w
    # Every tap lies on the padded grid, and the window spans the effective kernel.
    if layout.taps.size:
        assert layout.taps[..., 0].max() < layout.padded_size[0]
        assert layout.taps[..., 1].max() < layout.padded_size[1]
        extent = layout.taps[0, 0, -1, -1] - layout.taps[0, 0, 0, 0] + 1
        assert tuple(extent) == tuple(
            arithmetic.effective_kernel_size(k, d)
            for k, d in zip(case["kernel_size"], case["dilations"], strict=True)
        )
    # The numpy twin, fed an index-coded input and one-hot kernels, reads the same pixels.
    x, filters = _index_coded(case)
    twin = numpy_conv.conv2d(
        x, filters, case["strides"], case["padding"], dilations=case["dilations"]
    )
    expected = twin[0].reshape(*layout.output_size, *case["kernel_size"])
    np.testing.assert_array_equal(layout.index_map(), expected)
    # The picture's arithmetic (apply) is the twin's convolution.
    rng = np.random.default_rng(h * 100 + w)
    image = rng.integers(-3, 4, (h, w)).astype(np.float64)
    kernel = rng.integers(-2, 3, case["kernel_size"]).astype(np.float64)
    twin_values = numpy_conv.conv2d(
        image[None, :, :, None],
        kernel[:, :, None, None],
        case["strides"],
        case["padding"],
        dilations=case["dilations"],
    )[0, :, :, 0]
    np.testing.assert_array_equal(layout.apply(image, kernel), twin_values)
    rows = diagrams.im2col_matrix(layout)
    assert rows.shape == (int(np.prod(layout.output_size)), int(np.prod(case["kernel_size"])))


def _index_coded(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """Input pixels numbered 1..h*w; one one-hot kernel per tap."""
    h, w = case["input_size"]
    kh, kw = case["kernel_size"]
    x = np.arange(1, h * w + 1, dtype=np.float32).reshape(1, h, w, 1)
    filters = np.eye(kh * kw, dtype=np.float32).reshape(kh, kw, 1, kh * kw)
    return x, filters


def _tf_cases() -> list[dict]:
    """A seeded spread of valid, non-empty geometries, plus the book's own examples."""
    rng = np.random.default_rng(16)
    cases = [dict(case) for case in diagrams.PADDING_CASES + diagrams.STRIDE_DILATION_CASES]
    for case in cases:
        case.pop("title")
    while len(cases) < 160:
        kind = ["SAME", "VALID", "explicit"][rng.integers(3)]
        pad = kind
        if kind == "explicit":
            pad = [[0, 0], rng.integers(0, 4, 2).tolist(), rng.integers(0, 4, 2).tolist(), [0, 0]]
        case = {
            "input_size": tuple(rng.integers(1, 13, 2).tolist()),
            "kernel_size": tuple(rng.integers(1, 6, 2).tolist()),
            "strides": rng.integers(1, 4, 2).tolist(),
            "dilations": rng.integers(1, 4, 2).tolist(),
            "padding": pad,
        }
        try:
            layout = diagrams.window_layout(**case)
        except ValueError:
            continue
        if min(layout.output_size) > 0:
            cases.append(case)
    return cases


def _normalise(case: dict) -> dict:
    """The case's arguments in tf.nn.conv2d's own forms."""
    size = case["input_size"]
    return {
        "input_size": (size, size) if isinstance(size, int) else tuple(size),
        "kernel_size": (case["kernel_size"],) * 2
        if isinstance(case["kernel_size"], int)
        else tuple(case["kernel_size"]),
        "strides": case.get("strides", 1),
        "dilations": case.get("dilations", 1),
        "padding": case["padding"],
    }


def test_layout_matches_tf_nn_conv2d(eigen):
    cases = [_normalise(case) for case in _tf_cases()]
    batch = []
    for case in cases:
        x, filters = _index_coded(case)
        batch.append(
            (
                "conv2d",
                {
                    "input": x,
                    "filters": filters,
                    "strides": case["strides"],
                    "padding": case["padding"],
                    "dilations": case["dilations"],
                },
            )
        )
    results = eigen.call(batch)
    for case, result in zip(cases, results, strict=True):
        assert result[0] == "ok", (case, result)
        layout = diagrams.window_layout(**case)
        drawn = layout.index_map()
        computed = result[1][0].reshape(drawn.shape)
        np.testing.assert_array_equal(drawn, computed, err_msg=str(case))


def test_group_connections_match_tf_nn_conv2d(eigen):
    cases = [(6, 2, 9), (4, 1, 4), (4, 4, 3), (6, 3, 4), (8, 2, 8), (3, 1, 6)]
    batch = []
    for channels, depth, out in cases:
        one_hot = np.eye(channels, dtype=np.float32).reshape(channels, 1, 1, channels)
        filters = np.ones((1, 1, depth, out), np.float32)
        batch.append(
            ("conv2d", {"input": one_hot, "filters": filters, "strides": 1, "padding": "VALID"})
        )
    for (channels, depth, out), result in zip(cases, eigen.call(batch), strict=True):
        assert result[0] == "ok"
        reached = result[1].reshape(channels, out) != 0
        np.testing.assert_array_equal(diagrams.group_connections(channels, depth, out), reached)


@settings(max_examples=150, deadline=None)
@given(geometries(), st.integers(0, 2**16))
def test_input_gradient_taps_sum_to_the_twins_input_gradient(case, seed):
    if case.get("invalid"):
        return
    arguments = {k: v for k, v in case.items() if k != "invalid"}
    layout = diagrams.window_layout(**arguments)
    if min(layout.output_size) == 0:
        return
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, case["kernel_size"]).astype(np.float64)
    dy = rng.integers(-3, 4, layout.output_size).astype(np.float64)
    dx = numpy_conv.conv2d_backprop_input(
        (1, *case["input_size"], 1),
        w[:, :, None, None],
        dy[None, :, :, None],
        case["strides"],
        case["padding"],
        dilations=case["dilations"],
    )[0, :, :, 0]
    (top, _), (left, _) = layout.pads
    h, wd = case["input_size"]
    drawn = np.zeros((h, wd))
    for r in range(h):
        for c in range(wd):
            taps = diagrams.input_gradient_taps(layout, r + top, c + left)
            drawn[r, c] = sum(dy[i, j] * w[p, q] for i, j, p, q in taps)
    np.testing.assert_array_equal(drawn, dx)


def _evaluate(values: np.ndarray, merges: list[tuple[int, int]]) -> np.floating:
    nodes = list(values)
    for a, b in merges:
        nodes.append(nodes[a] + nodes[b])
    return nodes[-1]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_summation_order_is_numerics_summation(n, seed):
    values = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    for method in ("sequential", "pairwise"):
        merges = diagrams.summation_order(n, method)
        assert len(merges) == n - 1
        total = _evaluate(values, merges)
        assert total.dtype == np.float32
        assert total == numerics.summation(values, method)  # bit for bit
    blocked = _evaluate(values, diagrams.summation_order(n, "blocked", block=4))
    by_blocks = [numerics.summation(values[k : k + 4]) for k in range(0, n, 4)]
    assert blocked == numerics.summation(np.array(by_blocks, np.float32))


def test_binades_are_float32_spacing():
    for low, high, spacing, count in diagrams.binades(24, range(-3, 5)):
        assert spacing == numerics.ulp(np.float32(low))
        assert spacing == numerics.ulp(np.nextafter(np.float32(high), np.float32(0)))
        assert count * spacing == high - low


def test_drawing_functions_return_figures_and_never_show(monkeypatch):
    def refuse() -> None:
        raise AssertionError("a diagram function called plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    image = np.arange(25).reshape(5, 5) % 4
    kernel = np.array([[1, 0, -1], [1, 1, 1], [-1, -1, 1]])
    figures = [
        diagrams.sliding_window((5, 5), 3, 2, "SAME", image=image, kernel=kernel),
        diagrams.window_gallery(diagrams.PADDING_CASES),
        diagrams.window_gallery(diagrams.STRIDE_DILATION_CASES),
        diagrams.grouped_channels(6, 2, 9),
        diagrams.im2col_diagram(4, 3, padding="SAME"),
        diagrams.backward_diagram(5, 3, 2, "SAME"),
        diagrams.dtype_flow(remedies=True),
        diagrams.float_number_line(),
        diagrams.summation_trees(),
    ]
    for figure in figures:
        assert isinstance(figure, plt.Figure)
        assert figure.get_size_inches()[0] <= diagrams.WIDTH
        plt.close(figure)
    anim = diagrams.sliding_window_animation((5, 5), 3, 2, "SAME", image=image, kernel=kernel)
    html = diagrams.animation_html(anim)
    plt.close(anim._fig)
    assert "http://" not in html and "https://" not in html  # nothing fetched
    assert 'title="Play"' in html and 'title="Next frame"' in html
    assert len(html) < 1_000_000


def test_the_strip_shows_the_twins_values():
    image = np.arange(25).reshape(5, 5) % 4
    kernel = np.array([[1, 0, -1], [1, 1, 1], [-1, -1, 1]])
    layout = diagrams.window_layout((5, 5), 3, 2, "SAME")
    values = layout.apply(image, kernel)
    figure = diagrams.sliding_window((5, 5), 3, 2, "SAME", image=image, kernel=kernel)
    for ax in figure.axes:
        if not ax.get_visible():
            continue
        title = ax.get_title()  # "output (i, j) = v"
        i, j = (int(v) for v in title[title.index("(") + 1 : title.index(")")].split(","))
        assert title.endswith(f"= {values[i, j]}")
        assert f"{values[i, j]}" in [t.get_text() for t in ax.texts]
    plt.close(figure)
