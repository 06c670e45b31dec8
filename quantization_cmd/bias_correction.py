"""Bias correction (OpenVINO POT's FastBiasCorrection, AIMET's and NNCF's bias correction):
int8 weights and inputs shift a convolution's mean output; measure the shift per output
channel on the calibration data and take it out of the int32 bias TNN stores.

For each quantized convolution, on every calibration batch: its float input x gives the float
pre-activation output conv(x, W) + b, and the same x quantized with the layer's input scale
gives what TNN's int8 kernel accumulates, w_scale * (sum (x_q - zp)(W_q - zp_w) + b_q). The mean
difference per channel, in steps of w_scale, is added to b_q. Each layer is corrected for the
error it makes itself on float inputs (one data pass for all layers); errors that earlier
layers pass on are not chased: AIMET's cascaded variant needs a pass per layer, and on
SqueezeNet it gained 0.2 dB of output SQNR but lost 3.5 points of agreement (README).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from kernels.int8 import accumulator_dtype, centered_input
from kernels.int8 import quantize as quantize_blob
from kernels.ops.conv import arrange_filter, convolve
from kernels.rounding import round_half_away
from tnnformat import Layer, RawBuffer

from .events import Notice
from .pipeline import REFINE, Pass, QuantState
from .statistics import StatKey, Statistic

BIAS_ERROR = "bias_error"
INT32_MAX = np.iinfo(np.int32).max


class ConvBiasError:
    """Running sum per output channel of (float pre-activation - int8 pre-activation) of one
    convolution, fed its float input; mergeable like every statistic."""

    kind = BIAS_ERROR

    def __init__(self, layer: Layer, float_resource, int8_resource, input_scale):
        self.layer = Layer(layer.type, layer.name, layer.inputs[:1], layer.outputs[:1],
                           dict(layer.params, activation_type=0))
        out = layer.params["output_channel"]
        self.float_weights = arrange_filter(float_resource["filter"].numpy(np.float32), self.layer)
        self.float_bias = float_resource["bias"].numpy(np.float32).reshape(-1) if "bias" in float_resource \
            else np.zeros(out, np.float32)
        zero_w = np.broadcast_to(int8_resource["zero_point"].numpy().reshape(-1).astype(np.float64), (out,))
        centred = int8_resource["filter"].numpy().reshape(out, -1).astype(np.float64) - zero_w[:, None]
        # the int8 sums in float32 where they are exact, as the int8 kernel runs them (BLAS's fast path)
        self.int8_weights = arrange_filter(centred.astype(accumulator_dtype(centred, input_scale, None)), self.layer)
        self.int8_bias = int8_resource["bias"].numpy().reshape(-1).astype(np.float64)
        self.weight_scale = np.broadcast_to(int8_resource["scale"].numpy(np.float32).reshape(-1), (out,))
        self.input_scale = input_scale
        self.sum = np.zeros(out, np.float64)
        self.count = 0

    def observe(self, x: np.ndarray) -> None:
        expected = convolve(x.astype(np.float32), self.float_weights, self.layer) + self.float_bias[None, :, None, None]
        codes = quantize_blob(x, self.input_scale)
        acc = convolve(centered_input(codes, self.int8_weights.dtype), self.int8_weights, self.layer).astype(np.float64)
        got = (acc + self.int8_bias[None, :, None, None]) * self.weight_scale[None, :, None, None]
        self.sum += (expected - got).sum(axis=(0, 2, 3))
        self.count += expected.shape[0] * expected.shape[2] * expected.shape[3]

    def merge(self, other: "ConvBiasError") -> "ConvBiasError":
        out = ConvBiasError.__new__(ConvBiasError)
        out.__dict__.update(self.__dict__)
        out.sum, out.count = self.sum + other.sum, self.count + other.count
        return out

    def correction(self) -> np.ndarray:
        """The int32 steps to add to the bias."""
        return round_half_away(self.sum / max(self.count, 1) / np.where(self.weight_scale > 0, self.weight_scale, 1))


class BiasCorrection(Pass):
    """After the int8 model is written: every quantized convolution with a bias gets the
    correction of its mean output shift."""

    name = "bias correction"
    stage = REFINE

    def _layers(self, state: QuantState):
        return [layer for layer in state.plan.net.layers
                if layer.name in state.plan.layers and layer.type == "Convolution" and layer.params["bias"]]

    def statistics(self, state: QuantState) -> Dict[StatKey, Statistic]:
        wanted = {}
        for layer in self._layers(state):
            source = state.plan.scale_source[layer.inputs[0]]
            wanted[StatKey(layer.inputs[0], BIAS_ERROR, False, layer.name)] = ConvBiasError(
                layer, state.float_net.resources[layer.name], state.net.resources[layer.name], state.scales[source])
        return wanted

    def apply(self, state: QuantState) -> None:
        saturated = []
        for layer in self._layers(state):
            stat = state.statistics[StatKey(layer.inputs[0], BIAS_ERROR, False, layer.name)]
            resource = dict(state.net.resources[layer.name])
            bias = resource["bias"].numpy().astype(np.int64).reshape(-1) + stat.correction()
            if np.any(np.abs(bias) > INT32_MAX):
                saturated.append(layer.name)
            resource["bias"] = RawBuffer.from_array(np.clip(bias, -INT32_MAX, INT32_MAX).astype(np.int32), dims=())
            state.net.resources[layer.name] = resource
        if saturated:
            state.emit(Notice(f"bias correction saturated the int32 bias of {', '.join(saturated)}"))
