"""Each calibration method against values worked out by hand (or by a plain loop)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from kernels.rounding import round_half_away
from quantization_cmd.blob_methods import BLOB_METHODS, BlobStats, aciq, asy_min_max, min_max
from quantization_cmd.blob_methods import kl_divergence
from quantization_cmd.blob_methods.kl_divergence import kl_thresholds
from quantization_cmd.config import TNN_WEIGHT_METHODS, BlobConfig, LayerConfig
from quantization_cmd.statistics import BINS, Histogram, MeanAbs, Range
from quantization_cmd.weight_methods import admm
from quantization_cmd.weight_methods import asy_min_max as weight_asy
from quantization_cmd.weight_methods import min_max as weight_min_max


def stats_of(x: np.ndarray, per_tensor=False, mean_abs=False, histogram=False, method="MIN_MAX",
             bits=8) -> BlobStats:
    value_range = Range(x.shape[1], per_tensor)
    value_range.observe(x)
    config = BlobConfig(method, "tensor" if per_tensor else "channel", bits)
    stats = BlobStats("b", x.shape[1:], config, value_range)
    if mean_abs:
        stats.mean_abs = MeanAbs(x.shape[1], per_tensor)
        stats.mean_abs.observe(x)
    if histogram:
        stats.histogram = Histogram.over(value_range)
        stats.histogram.observe(x)
    return stats


def test_round_half_away_from_zero():
    values = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, -2.5000002], np.float32)
    assert round_half_away(values).tolist() == [1, 2, 3, -1, -2, 0, -3]
    rng = np.random.default_rng(0)  # against floor(|x| + 0.5) in float64, exact for both types
    for dtype in (np.float32, np.float64):
        x = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-8, 9, 20000),
                            rng.integers(-300, 300, 2000) + 0.5, np.nextafter(np.float32(0.5), 0) * np.array([1, -1])])
        x = x.astype(dtype)
        wide = x.astype(np.float64)
        assert np.array_equal(round_half_away(x), (np.sign(wide) * np.floor(np.abs(wide) + 0.5)).astype(np.int64))
    assert round_half_away(np.float32(-2.5)) == -3 and round_half_away(np.array([3, -3])).tolist() == [3, -3]


def test_range_and_mean_abs_per_channel_and_per_tensor():
    x = np.array([[[[1.0, -2.0]], [[0.5, 0.0]]], [[[3.0, 0.0]], [[-4.0, 1.0]]]], np.float32)
    s = stats_of(x, mean_abs=True)
    assert s.range.min.tolist() == [-2.0, -4.0] and s.range.max.tolist() == [3.0, 1.0]
    # channel 0: sample means of |x| are 1.5 and 1.5; channel 1: 0.25 and 2.5
    np.testing.assert_allclose(s.mean_abs.value, [1.5, 1.375])
    t = stats_of(x, per_tensor=True, mean_abs=True)
    assert t.range.absmax.tolist() == [4.0]
    np.testing.assert_allclose(t.mean_abs.value, [(0.875 + 2.0) / 2])


def test_min_max_scale_is_tnn_bin_centre_formula():
    x = np.array([[[[0.0, -2.54]], [[1.27, 0.5]]]], np.float32)
    scale, zp = min_max.scales(stats_of(x))
    expected = [(2047.5 / np.float64(np.float32(2048 / np.float32(2.54)))) / 127,
                (2047.5 / np.float64(np.float32(2048 / np.float32(1.27)))) / 127]
    np.testing.assert_allclose(scale, expected, rtol=1e-7)
    assert scale[0] < 2.54 / 127 and zp.tolist() == [0, 0]


def test_histogram_bins_skip_zeros_and_clamp_the_top():
    x = np.array([[[[0.0, 1.0, 0.5, -0.25, 0.0, 1.0]]]], np.float32)
    s = stats_of(x, histogram=True)
    counts = s.histogram.counts[0]
    assert counts.sum() == 4  # the two zeros are not counted
    assert counts[2047] == 2 and counts[1024] == 1 and counts[512] == 1


def test_asymmetric_scale_and_zero_point():
    scale, zp = asy_min_max.asymmetric(np.array([-1.0, 0.5, -3.0]), np.array([3.0, 2.0, -1.0]))
    # [-1, 3]: 4/254, zp = 127 - round(3 / (4/254)) = 127 - 191 = -64
    # [0, 2] (min clipped to 0): 2/254, zp = 127 - 254 = -127
    # [-3, 0] (max clipped to 0): 3/254, zp = 127
    np.testing.assert_allclose(scale, [4 / 254, 2 / 254, 3 / 254], rtol=1e-6)
    assert zp.tolist() == [-64, -127, 127]
    # the range's ends land on 127 and -127 (within a rounding step) after adding the zero point
    q_max = round_half_away(np.float32(3.0) / scale[0]) + zp[0]
    q_min = round_half_away(np.float32(-1.0) / scale[0]) + zp[0]
    assert q_max == 127 and q_min in (-127, -128)


def test_aciq_thresholds():
    x = np.random.default_rng(0).laplace(0, 0.5, (4, 2, 16, 16)).astype(np.float32)
    s = stats_of(x, mean_abs=True)
    scale, _ = aciq.laplace_scales(s)
    np.testing.assert_allclose(scale, 9.89675982 * s.mean_abs.value / 127, rtol=1e-6)
    scale, _ = aciq.gauss_scales(s)
    const = 0.175 * (1 + math.sqrt(math.pi * math.log(4)))
    sigma = s.range.absmax * 2 * const / math.sqrt(2 * math.log(256))  # N = H * W per channel
    np.testing.assert_allclose(scale, 3.92403714 * sigma / 127, rtol=1e-6)
    per_tensor = stats_of(x, per_tensor=True)
    scale, _ = aciq.gauss_scales(per_tensor)
    sigma = per_tensor.range.absmax * 2 * const / math.sqrt(2 * math.log(512))  # N = C * H * W
    np.testing.assert_allclose(scale, 3.92403714 * sigma / 127, rtol=1e-6)


def kl_loop(p: np.ndarray) -> int:
    """The KL search spelled out as TNN describes it, one candidate at a time."""
    best, best_i = 1e6, 128
    for i in range(128, BINS):
        ref = p[:i].copy()
        ref[i - 1] += p[i:].sum()
        width = i / 128
        expanded = np.zeros(i)
        for j in range(128):
            start, end = j * width, (j + 1) * width
            lo, hi = math.ceil(start), math.floor(end)
            left, right = lo - start, end - hi
            mass = left * p[lo - 1] * (left > 0) + right * p[min(hi, BINS - 1)] * (right > 0) + p[lo:hi].sum()
            value = mass / (left + right + hi - lo)
            if left > 0:
                expanded[lo - 1] += value * left
            if right > 0 and hi < i:
                expanded[hi] += value * right
            expanded[lo:hi] += value
        kl = np.sum(ref * np.log(ref / expanded))
        if kl < best:
            best, best_i = kl, i
    return best_i


@pytest.mark.parametrize("spread", [0.3, 1.0, 4.0])
def test_kl_matches_the_plain_loop(spread):
    rng = np.random.default_rng(int(spread * 10))
    values = np.abs(np.concatenate([rng.standard_normal(50000) * spread, rng.standard_normal(50) * 20]))
    counts = np.histogram(values, bins=BINS, range=(0, values.max()))[0] + 1e-7
    p = counts / counts.sum()
    assert kl_thresholds(p[None])[0] == kl_loop(p)


def test_kl_searches_a_repeated_row_once_with_the_same_result():
    """Rows met before (a concatenation repeats its inputs' channels) come from the digest
    cache: the same thresholds as a fresh search, at every bit width, row order kept."""
    rng = np.random.default_rng(5)
    rows = rng.random((3, BINS)) ** rng.integers(2, 20, (3, 1)) + 1e-7
    rows /= rows.sum(axis=1, keepdims=True)
    table = rows[[0, 1, 0, 2, 1]]
    for bits in (6, 8):
        fresh = [int(kl_divergence._thresholds_of(row[None], 2 ** (bits - 1))[0]) for row in table]  # one by one
        assert list(kl_thresholds(table, bits)) == fresh
        assert list(kl_thresholds(table[::-1], bits)) == fresh[::-1]
    assert fresh != list(kl_divergence._thresholds_of(table, 32))  # so the cache is keyed by width


def test_kl_clips_a_distribution_with_far_outliers():
    """A Gaussian with a few huge outliers: KL clips far below the outliers, MIN_MAX does not."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 1, 64, 64)).astype(np.float32)
    x[0, 0, 0, :4] = 60.0
    s = stats_of(x, histogram=True)
    kl_scale, _ = BLOB_METHODS["KL_DIVERGENCE"].scales(s)
    mm_scale, _ = min_max.scales(s)
    assert kl_scale[0] * 127 < 12 and mm_scale[0] * 127 > 59


def test_weight_min_max_within_half_a_step():
    w = np.random.default_rng(0).standard_normal((4, 27)).astype(np.float32)
    q, scale, zp = weight_min_max.quantize(w)
    np.testing.assert_allclose(scale, np.abs(w).max(1) / 127, rtol=1e-7)
    assert np.all(np.abs(q.astype(np.float32) * scale[:, None] - w) <= scale[:, None] / 2 + 1e-7)
    assert np.abs(q).max() == 127 and zp.tolist() == [0] * 4


def test_weight_asymmetric_dequantizes_within_half_a_step():
    w = np.random.default_rng(1).uniform(-0.2, 1.0, (3, 50)).astype(np.float32)
    q, scale, zp = weight_asy.quantize(w)
    restored = (q.astype(np.float32) - zp[:, None]) * scale[:, None]
    assert np.all(np.abs(restored - w) <= scale[:, None] / 2 * 1.0001)


def test_admm_converges_to_a_fixed_point_and_never_increases_the_error():
    w = np.random.default_rng(2).standard_normal((6, 300)).astype(np.float32)
    q, scale, _ = admm.quantize(w)
    # a fixed point: rounding at the final scale gives the final q, and the scale is the
    # least-squares scale of that q
    again = np.clip(round_half_away(w / (scale[:, None] + np.float32(1e-9))), -127, 127)
    assert np.array_equal(again, q)
    qf = q.astype(np.float64)
    np.testing.assert_allclose(scale, (w * qf).sum(1) / (qf * qf).sum(1), rtol=1e-6)
    # alternating minimization: the error is at most the starting point's
    start = np.abs(w).max(1) / (127 * 1.25)
    q0 = np.clip(round_half_away(w / start[:, None]), -127, 127)
    err_start = ((q0 * start[:, None] - w) ** 2).sum(1)
    err_admm = ((q * scale[:, None].astype(np.float64) - w) ** 2).sum(1)
    assert np.all(err_admm <= err_start + 1e-9)


def tnn_admm_row(w: np.ndarray, bits: int, rounds: int = 1000):
    """TNN's ADMM loop for one row as written: 1000 rounds, float32 dot products added in
    order, std::round."""
    top, eps = 2 ** (bits - 1) - 1, np.float32(1e-9)
    scale = np.float32(np.abs(w).max() / (top * 1.25))
    for _ in range(rounds):
        q = np.clip(round_half_away(w / (scale + eps)), -top, top).astype(np.float32)
        scale = np.float32(np.cumsum(w * q, dtype=np.float32)[-1] / (np.cumsum(q * q, dtype=np.float32)[-1] + eps))
    return q, scale


@pytest.mark.parametrize("bits, einsum", [(8, True), (4, True), (8, False)])
def test_admm_gives_tnn_loops_bits_in_pieces_on_all_cores(bits, einsum, monkeypatch):
    """Early exits, the working set, pieces of a few rows (here 7) and a single-row piece
    change nothing: q and scale are those of TNN's 1000-round loop, to the bit, with einsum's
    sums or the cumulative ones (the path for a numpy whose einsum sums otherwise)."""
    monkeypatch.setattr(admm, "_einsum_in_order", lambda: einsum)
    rng = np.random.default_rng(bits)
    w = np.concatenate([rng.standard_normal((9, 400)) * rng.uniform(0.01, 3, (9, 1)), rng.laplace(size=(6, 400)),
                        np.zeros((1, 400)), np.full((1, 400), 0.25)]).astype(np.float32)
    monkeypatch.setattr(admm, "PIECE_VALUES", 7 * 400)  # pieces of 7, 7 and 3 rows
    q, scale, zero = admm.quantize(np.concatenate([w, w[:1]]), bits)
    for row in range(len(w)):
        expected_q, expected_scale = tnn_admm_row(w[row], bits)
        assert np.array_equal(q[row], expected_q) and scale[row].tobytes() == expected_scale.tobytes(), row
    assert np.array_equal(q[-1], q[0]) and scale[-1] == scale[0] and not zero.any()


@pytest.mark.parametrize("rounds", [1000, 999])
def test_admm_row_that_swings_between_two_states_ends_as_tnns_loop_does(rounds, monkeypatch):
    """Row 1 here never settles: from round 207 on, one value changes back and forth (found
    by a search; such rows are rare and long, AlexNet's 38M-value layer per tensor is one). It
    leaves the working set when the swing starts, with the state of the last round's parity,
    while row 0 goes on to round 225: the same bits as TNN's loop after 1000 rounds, and after
    999 (the other parity)."""
    monkeypatch.setattr(admm, "MAX_ITERATIONS", rounds)
    periods, returned = [], admm._RecentRounds.returned

    def spied(self, scale):
        periods.append(returned(self, scale))
        return periods[-1]
    monkeypatch.setattr(admm._RecentRounds, "returned", spied)
    w = np.random.default_rng(82).uniform(-1, 1, (4, 100_000)).astype(np.float32)[2:]
    q, scale, _ = admm.quantize(w, 8)
    assert [p[p > 0].tolist() for p in periods if p.any()] == [[2]]
    assert len(periods) < rounds - 700  # it left early
    for row in range(len(w)):
        expected_q, expected_scale = tnn_admm_row(w[row], 8, rounds)
        assert np.array_equal(q[row], expected_q) and scale[row].tobytes() == expected_scale.tobytes(), row


@pytest.mark.parametrize("period", [2, 3, 5])
@pytest.mark.parametrize("remaining", [10, 11, 12, 13, 14])
def test_admm_recent_rounds_find_a_cycle_and_restore_the_last_rounds_state(period, remaining):
    """A working set of 3 rows (values x rows): row 1 cycles through `period` states after two
    rounds of settling in, row 0 moves only once, row 2 never. The cycle is found once it has
    come round (not before), only for row 1, and restore gives the state the cycle will be in
    `remaining` rounds on."""
    rng = np.random.default_rng(period)
    states = [rng.integers(0, 5, (6, 3)).astype(np.float32) for _ in range(2)]
    cycle = [states[-1].copy()]
    for _ in range(period - 1):
        cycle.append(cycle[-1].copy())
        cycle[-1][rng.choice(6, 2, replace=False), 1] += 1 + len(cycle)  # a new state of row 1
    states[1][:, 2] = states[0][:, 2]
    states[1][:, 0] = states[0][:, 0] + 1
    for state in cycle:
        state[:, (0, 2)] = states[1][:, (0, 2)]
    sequence = states + cycle[1:] + cycle * 3  # rounds 0, 1, ...
    recent, m = admm._RecentRounds(), sequence[0].copy()
    for k, state in enumerate(sequence):
        assert np.array_equal(m, state)
        found = recent.returned((m * np.arange(1, 7)[:, None]).sum(0))  # a scale per row, from its state
        if found.any():
            break
        changed = np.flatnonzero(sequence[k + 1] != m)
        moved = np.zeros(3, bool)
        moved[changed % 3] = True
        recent.changed(changed, m.reshape(-1)[changed], sequence[k + 1].reshape(-1)[changed], moved, m.size)
        m = sequence[k + 1].copy()
    assert k == 1 + period and found.tolist() == [0, period, 0]  # the first return to a state
    recent.restore(m, found, remaining)
    assert np.array_equal(m[:, 1], cycle[remaining % period][:, 1]) and np.array_equal(m[:, (0, 2)], state[:, (0, 2)])


@pytest.mark.parametrize("columns", [2, 3, 8, 65])
def test_admm_dot_products_add_each_rows_values_in_order(columns):
    """The scale's dot products rely on numpy's einsum adding down the first axis row after
    row: checked against the cumulative sum (admm checks it once per process too)."""
    rng = np.random.default_rng(columns)
    a, b = (rng.standard_normal((5000, columns)).astype(np.float32) * 100 for _ in range(2))
    assert admm._einsum_in_order()  # this numpy takes the fast path
    assert np.array_equal(admm._running_dot(a, b), np.cumsum(a * b, axis=0, dtype=np.float32)[-1])
    assert np.array_equal(admm._running_dot(a[:, :1], b[:, :1]), np.cumsum(a[:, 0] * b[:, 0], dtype=np.float32)[-1:])


def conv_layer(out=4, cin=3, group=1, bias=1):
    from tnnformat import Layer
    from tnnformat.layer_types import spec
    from tnnformat.params import default_params

    return Layer("Convolution", "conv", ["x"], ["y"], default_params(
        spec("Convolution").params, group=group, input_channel=cin, output_channel=out, kernel_h=3, kernel_w=3,
        stride_h=1, stride_w=1, pad_h=1, pad_w=1, bias=bias))


@pytest.mark.parametrize("per_tensor", [False, True])
@pytest.mark.parametrize("method", [0, 1, 3])
def test_conv_weights_and_bias_dequantize_within_half_a_step(per_tensor, method):
    """int8 weights times their scale give back weight * input scale within half a step;
    the int32 bias times the weight scale gives back the bias within half a step."""
    from quantization_cmd.quantize import _conv
    from tnnformat import RawBuffer

    rng = np.random.default_rng(method)
    weights, bias = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    input_scale = np.array([0.02, 0.05, 0.01], np.float32)
    res = _conv(conv_layer(), {"filter": RawBuffer.from_array(weights), "bias": RawBuffer.from_array(bias)},
                input_scale, LayerConfig(TNN_WEIGHT_METHODS[method], "tensor" if per_tensor else "channel"))
    q = res["filter"].numpy().reshape(4, -1).astype(np.float32)
    scale = np.broadcast_to(res["scale"].numpy(), (4,))
    zero = np.broadcast_to(res["zero_point"].numpy(), (4,)).astype(np.float32)
    target = (weights * input_scale[None, :, None, None]).reshape(4, -1)
    restored = (q - zero[:, None]) * scale[:, None]
    inside = np.abs(target) <= np.abs(target).max() if method != 1 else np.abs(q) < 127  # ADMM clips its tails
    assert np.all(np.abs(restored - target)[inside] <= scale[:, None].repeat(27, 1)[inside] / 2 * 1.0001)
    assert np.all(np.abs(res["bias"].numpy() * scale - bias) <= scale / 2 * 1.0001)


def test_depthwise_weight_scale_carries_the_input_scale():
    from quantization_cmd.quantize import _conv
    from tnnformat import RawBuffer

    weights = np.random.default_rng(0).standard_normal((3, 1, 3, 3)).astype(np.float32)
    input_scale = np.array([0.5, 0.25, 2.0], np.float32)
    res = _conv(conv_layer(out=3, cin=3, group=3, bias=0), {"filter": RawBuffer.from_array(weights)},
                input_scale, LayerConfig())
    expected = np.abs(weights).reshape(3, -1).max(1) / 127 * input_scale
    np.testing.assert_allclose(res["scale"].numpy(), expected, rtol=1e-6)


def test_all_zero_weights_keep_their_bias():
    from quantization_cmd.quantize import _conv
    from tnnformat import RawBuffer

    weights = np.zeros((4, 3, 3, 3), np.float32)
    weights[0] = 1
    bias = np.array([0.5, -0.37, 0.0, 2.0], np.float32)
    res = _conv(conv_layer(), {"filter": RawBuffer.from_array(weights), "bias": RawBuffer.from_array(bias)},
                np.ones(3, np.float32), LayerConfig())
    scale = res["scale"].numpy()
    assert np.all(scale > 0) and np.all(np.isfinite(scale))
    np.testing.assert_allclose(res["bias"].numpy()[1:] * scale[1:], bias[1:], atol=1e-6)  # exact
    assert abs(res["bias"].numpy()[0] * scale[0] - bias[0]) <= scale[0] / 2  # an ordinary row


def test_percentile_threshold_counts_zeros_and_reads_the_bin_edge():
    x = np.zeros((1, 1, 100, 100), np.float32)
    x.reshape(-1)[:5000] = np.linspace(0.001, 1.0, 5000)  # half zeros, half uniform up to 1
    s = stats_of(x, histogram=True, method="PERCENTILE")
    from quantization_cmd.blob_methods import percentile
    # the 75th percentile of |x| is the middle of the non-zero half: 0.5 (to a bin)
    np.testing.assert_allclose(percentile.thresholds(s, 75.0), [0.5], atol=1 / 2048 + 1e-3)
    scale, zp = BLOB_METHODS["PERCENTILE"].scales(s)
    assert 0.99 / 127 <= scale[0] <= 1.0 / 127 * 1.001 and zp[0] == 0


def test_mse_threshold_of_a_known_distribution():
    """200000 Gaussian values and one outlier at 10: MIN_MAX takes the outlier; MSE clips where
    the outlier's clipping error (10 - t)^2 meets the grid's rounding error, 2e5 (t / 127)^2 / 12,
    near t = 5 (worked out by hand: 52 at t = 4, 51 at 5, 53 at 6)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 400, 500)).astype(np.float32)
    x[0, 0, 0, 0] = 10.0
    s = stats_of(x, histogram=True, method="MSE")
    scale, _ = BLOB_METHODS["MSE"].scales(s)
    threshold = scale[0] * 127
    assert 4.0 < threshold < 6.0, threshold
    from quantization_cmd.blob_methods import mse
    errors = mse.errors(s.histogram.counts, s.histogram.interval, 8)[0]
    assert errors.argmin() == int(round(threshold * s.histogram.interval[0])) - 1
    assert errors.min() < errors[-1]  # better than clipping at the largest |x|


def test_quantile_methods_aggregate_per_sample_quantiles():
    from quantization_cmd.statistics import SampleQuantiles

    x = np.random.default_rng(1).uniform(-1, 3, (6, 2, 10, 10)).astype(np.float32)
    s = stats_of(x, method="QUANTILE_MEAN")
    s.quantiles = SampleQuantiles(2, False, 0.01)
    s.quantiles.observe(x[:4])
    other = SampleQuantiles(2, False, 0.01)
    other.observe(x[4:])
    s.quantiles = s.quantiles.merge(other)
    low, high = s.quantiles.values()
    assert low.shape == (6, 2)
    expected_high = np.quantile(x.reshape(6, 2, -1), 0.99, axis=2).mean(axis=0)
    scale, zp = BLOB_METHODS["QUANTILE_MEAN"].scales(s)
    np.testing.assert_allclose(scale * 127, expected_high, rtol=1e-5)
    asym = stats_of(x, method="QUANTILE_MEDIAN")
    asym.config = BlobConfig("QUANTILE_MEDIAN", symmetric=False)
    asym.quantiles = s.quantiles
    scale, zp = BLOB_METHODS["QUANTILE_MEDIAN"].scales(asym)
    assert np.all(zp != 0) and np.all(scale > 0)


def test_method_params_are_checked():
    from quantization_cmd.config import ConfigError

    BlobConfig("PERCENTILE", param=99.9).check("x")
    with pytest.raises(ConfigError, match="PERCENTILE's param must be a number in"):
        BlobConfig("PERCENTILE", param=101).check("x")
    with pytest.raises(ConfigError, match="MIN_MAX takes no param"):
        BlobConfig("MIN_MAX", param=1.0).check("x")


def test_zero_weight_row_with_a_denormal_bias_gets_a_positive_scale():
    import warnings

    from quantization_cmd.quantize import _conv
    from tnnformat import RawBuffer

    weights = np.ones((2, 3, 3, 3), np.float32)
    weights[1] = 0
    bias = np.array([0.5, 1e-40], np.float32)  # a denormal, as exporters leave in dead channels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _conv(conv_layer(out=2), {"filter": RawBuffer.from_array(weights), "bias": RawBuffer.from_array(bias)},
                    np.ones(3, np.float32), LayerConfig())
    assert np.all(res["scale"].numpy() > 0) and res["bias"].numpy()[1] == 0
