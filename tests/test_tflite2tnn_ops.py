"""Each TFLite operator tflite2tnn converts, in a one-operator model written with the
flatbuffers package, against TFLite's runtime (LiteRT): SAME/VALID padding, strides, fused
activations, NHWC axes, broadcasting and the resize coordinate rules."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import Interpreter
from tnnformat.tflite2tnn import ConversionError, convert

from conftest import require
from tflite_builder import model

RNG = np.random.default_rng(7)
CODES = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4,
         "DEPTH_TO_SPACE": 5, "FULLY_CONNECTED": 9, "LOGISTIC": 14, "MAX_POOL_2D": 17, "MUL": 18,
         "RELU": 19, "RELU_N1_TO_1": 20, "RELU6": 21, "RESHAPE": 22, "RESIZE_BILINEAR": 23,
         "SOFTMAX": 25, "TANH": 28, "PAD": 34, "TRANSPOSE": 39, "MEAN": 40, "SUB": 41, "DIV": 42,
         "SQUEEZE": 43, "STRIDED_SLICE": 45, "SPLIT": 49, "PRELU": 54, "MAXIMUM": 55, "MINIMUM": 57,
         "PADV2": 60, "TRANSPOSE_CONV": 67, "SUM": 74, "RESIZE_NEAREST_NEIGHBOR": 97,
         "LEAKY_RELU": 98, "HARD_SWISH": 117}
RELU6_ACT, TANH_ACT = 3, 4


def w(*shape, low=-1.0):
    return RNG.uniform(low, 1.0, shape).astype(np.float32)


def ints(*values):
    return np.array(values, np.int32)


def window(padding, stride_w, stride_h, *rest):
    return [(0, "b", padding), (1, "i", stride_w), (2, "i", stride_h)] + list(rest)


#: name -> (op, inputs: shape (computed) or array (constant), output shapes, options table, fields)
CASES = {
    "conv_same_stride2_relu6": ("CONV_2D", [(1, 9, 9, 4), w(8, 3, 3, 4), w(8)], [(1, 5, 5, 8)],
                                "Conv2DOptions", window(0, 2, 2, (3, "b", RELU6_ACT))),
    "conv_valid_dilated": ("CONV_2D", [(1, 9, 8, 3), w(4, 3, 3, 3), w(4)], [(1, 5, 4, 4)],
                           "Conv2DOptions", window(1, 1, 1, (4, "i", 2), (5, "i", 2))),
    "conv_same_even_kernel_stride2": ("CONV_2D", [(1, 8, 8, 2), w(3, 4, 4, 2), w(3)], [(1, 4, 4, 3)],
                                      "Conv2DOptions", window(0, 2, 2)),
    "depthwise_multiplier2_tanh_not_applied": ("DEPTHWISE_CONV_2D", [(1, 7, 7, 3), w(1, 3, 3, 6), w(6)], [(1, 4, 4, 6)],
                                   "DepthwiseConv2DOptions", window(0, 2, 2, (3, "i", 2), (4, "b", TANH_ACT))),
    "transpose_conv_same": ("TRANSPOSE_CONV", [ints(1, 8, 8, 4), w(4, 3, 3, 2), (1, 4, 4, 2)], [(1, 8, 8, 4)],
                            "TransposeConvOptions", window(0, 2, 2)),
    "transpose_conv_valid": ("TRANSPOSE_CONV", [ints(1, 9, 9, 3), w(3, 3, 3, 2), (1, 4, 4, 2)], [(1, 9, 9, 3)],
                             "TransposeConvOptions", window(1, 2, 2)),
    "fully_connected_from_4d": ("FULLY_CONNECTED", [(1, 2, 3, 4), w(5, 24), w(5)], [(1, 5)],
                                "FullyConnectedOptions", [(0, "b", 1)]),
    "average_pool_same": ("AVERAGE_POOL_2D", [(1, 7, 7, 3)], [(1, 4, 4, 3)], "Pool2DOptions",
                          window(0, 2, 2, (3, "i", 3), (4, "i", 3))),
    "max_pool_same_odd": ("MAX_POOL_2D", [(1, 7, 6, 3)], [(1, 4, 3, 3)], "Pool2DOptions",
                          window(0, 2, 2, (3, "i", 3), (4, "i", 3))),
    "max_pool_valid": ("MAX_POOL_2D", [(1, 8, 8, 2)], [(1, 4, 4, 2)], "Pool2DOptions",
                       window(1, 2, 2, (3, "i", 2), (4, "i", 2))),
    "add_channel_constant_relu": ("ADD", [(1, 4, 5, 3), w(3)], [(1, 4, 5, 3)], "AddOptions", [(0, "b", 1)]),
    "sub_two_inputs": ("SUB", [(1, 4, 5, 3), (1, 4, 5, 3)], [(1, 4, 5, 3)], "SubOptions", []),
    "mul_broadcast_hw_constant": ("MUL", [(1, 4, 5, 3), w(5, 1)], [(1, 4, 5, 3)], "MulOptions", []),
    "div_by_constant": ("DIV", [(1, 4, 5, 3), w(1, 1, 1, 3, low=0.5)], [(1, 4, 5, 3)], "DivOptions", []),
    "maximum": ("MAXIMUM", [(1, 4, 5, 3), w(3)], [(1, 4, 5, 3)], None, []),
    "minimum_2d": ("MINIMUM", [(2, 6), (2, 6)], [(2, 6)], None, []),
    "mean_hw": ("MEAN", [(1, 4, 5, 3), ints(1, 2)], [(1, 3)], "ReducerOptions", [(0, "?", False)]),
    "mean_h_keep": ("MEAN", [(1, 4, 5, 3), ints(1)], [(1, 1, 5, 3)], "ReducerOptions", [(0, "?", True)]),
    "sum_channels": ("SUM", [(1, 4, 5, 3), ints(3)], [(1, 4, 5)], "ReducerOptions", [(0, "?", False)]),
    "pad": ("PAD", [(1, 3, 4, 2), ints(0, 0, 1, 2, 2, 1, 0, 3).reshape(4, 2)], [(1, 6, 7, 5)], None, []),
    "padv2_value": ("PADV2", [(1, 3, 4, 2), ints(0, 0, 1, 0, 0, 2, 1, 1).reshape(4, 2), np.array([-2.0], np.float32)],
                    [(1, 4, 6, 4)], None, []),
    "reshape_4d_to_2d": ("RESHAPE", [(1, 2, 3, 4), ints(2, 12)], [(2, 12)], "ReshapeOptions", [(0, "ints", [2, 12])]),
    "reshape_4d_to_4d": ("RESHAPE", [(1, 2, 3, 4), ints(1, 3, 2, 4)], [(1, 3, 2, 4)], "ReshapeOptions",
                         [(0, "ints", [1, 3, 2, 4])]),
    "squeeze": ("SQUEEZE", [(1, 1, 1, 6)], [(1, 6)], "SqueezeOptions", [(0, "ints", [1, 2])]),
    "concat_channels": ("CONCATENATION", [(1, 2, 3, 4), (1, 2, 3, 2)], [(1, 2, 3, 6)], "ConcatenationOptions",
                        [(0, "i", 3)]),
    "concat_width": ("CONCATENATION", [(1, 2, 3, 4), (1, 2, 1, 4)], [(1, 2, 4, 4)], "ConcatenationOptions",
                     [(0, "i", -2)]),
    "softmax_4d": ("SOFTMAX", [(1, 2, 3, 5)], [(1, 2, 3, 5)], "SoftmaxOptions", [(0, "f", 1.0)]),
    "softmax_2d": ("SOFTMAX", [(2, 7)], [(2, 7)], "SoftmaxOptions", [(0, "f", 1.0)]),
    "logistic": ("LOGISTIC", [(1, 3, 4, 2)], [(1, 3, 4, 2)], None, []),
    "tanh": ("TANH", [(1, 3, 4, 2)], [(1, 3, 4, 2)], None, []),
    "relu": ("RELU", [(1, 3, 4, 2)], [(1, 3, 4, 2)], None, []),
    "relu6": ("RELU6", [(1, 3, 4, 2)], [(1, 3, 4, 2)], None, []),
    "relu_n1_to_1": ("RELU_N1_TO_1", [(1, 3, 4, 2)], [(1, 3, 4, 2)], None, []),
    "hard_swish": ("HARD_SWISH", [(1, 3, 4, 2)], [(1, 3, 4, 2)], "HardSwishOptions", []),
    "prelu_per_channel": ("PRELU", [(1, 3, 4, 5), w(1, 1, 5)], [(1, 3, 4, 5)], None, []),
    "leaky_relu": ("LEAKY_RELU", [(1, 3, 4, 2)], [(1, 3, 4, 2)], "LeakyReluOptions", [(0, "f", 0.2)]),
    "resize_bilinear_half_pixel": ("RESIZE_BILINEAR", [(1, 3, 4, 2), ints(6, 8)], [(1, 6, 8, 2)],
                                   "ResizeBilinearOptions", [(2, "?", False), (3, "?", True)]),
    "resize_bilinear_align_corners": ("RESIZE_BILINEAR", [(1, 3, 4, 2), ints(5, 7)], [(1, 5, 7, 2)],
                                      "ResizeBilinearOptions", [(2, "?", True), (3, "?", False)]),
    "resize_nearest_asymmetric": ("RESIZE_NEAREST_NEIGHBOR", [(1, 3, 4, 2), ints(6, 8)], [(1, 6, 8, 2)],
                                  "ResizeNearestNeighborOptions", [(0, "?", False), (1, "?", False)]),
    "resize_nearest_half_pixel": ("RESIZE_NEAREST_NEIGHBOR", [(1, 3, 4, 2), ints(6, 8)], [(1, 6, 8, 2)],
                                  "ResizeNearestNeighborOptions", [(0, "?", False), (1, "?", True)]),
    "transpose_4d": ("TRANSPOSE", [(1, 2, 3, 4), ints(0, 2, 1, 3)], [(1, 3, 2, 4)], "TransposeOptions", []),
    "transpose_3d": ("TRANSPOSE", [(2, 3, 4), ints(2, 0, 1)], [(4, 2, 3)], "TransposeOptions", []),
    "strided_slice_masks": ("STRIDED_SLICE", [(1, 6, 7, 4), ints(0, 1, 0, 1), ints(1, 5, 7, 3), ints(1, 2, 3, 1)],
                            [(1, 2, 3, 2)], "StridedSliceOptions", [(0, "i", 1), (1, "i", 4)]),
    "strided_slice_shrink": ("STRIDED_SLICE", [(1, 6, 7, 4), ints(0, 2, 0, 0), ints(1, 3, 7, 4), ints(1, 1, 1, 1)],
                             [(1, 7, 4)], "StridedSliceOptions", [(4, "i", 2)]),
    "split_channels": ("SPLIT", [ints(3), (1, 2, 3, 6)], [(1, 2, 3, 2)] * 3, "SplitOptions", [(0, "i", 3)]),
    "depth_to_space": ("DEPTH_TO_SPACE", [(1, 2, 3, 8)], [(1, 4, 6, 2)], "DepthToSpaceOptions", [(0, "i", 2)]),
}


def one_operator(op, inputs, outputs, table, fields):
    """The model's bytes and its computed inputs' shapes."""
    tensors, computed = [], []
    for index, spec in enumerate(inputs):
        if isinstance(spec, np.ndarray):
            tensors.append((f"c{index}", spec.shape, spec))
        else:
            tensors.append((f"x{index}", spec, None))
            computed.append(index)
    outs = list(range(len(tensors), len(tensors) + len(outputs)))
    tensors += [(f"y{i}", shape, None) for i, shape in enumerate(outputs)]
    return model(tensors, [(CODES[op], list(range(len(inputs))), outs, table, fields)], computed, outs), \
        [inputs[i] for i in computed]


def litert(data, xs):
    from ai_edge_litert.interpreter import Interpreter as LiteRT

    interpreter = LiteRT(model_content=data)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), xs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def nchw(x):
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_matches_litert(case):
    require("ai_edge_litert")
    data, shapes = one_operator(*CASES[case])
    xs = [RNG.uniform(-2, 2, shape).astype(np.float32) for shape in shapes]
    net = convert(data)
    ours = Interpreter(net).forward({name: nchw(x) for name, x in zip(net.inputs, xs)})
    theirs = litert(data, xs)
    assert len(net.outputs) == len(theirs)
    for name, expected in zip(net.outputs, theirs):
        got = ours[name]
        np.testing.assert_allclose(got.transpose(0, 2, 3, 1) if got.ndim == 4 else got, expected,
                                   atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("case, fragment", [
    (("SOFTMAX", [(1, 5)], [(1, 5)], "SoftmaxOptions", [(0, "f", 0.5)]), "beta 0.5 is not supported"),
    (("STRIDED_SLICE", [(1, 6), ints(0, 5), ints(1, 1), ints(1, -1)], [(1, 4)], "StridedSliceOptions", []),
     "only positive strides"),
    (("CONV_2D", [(1, 5, 5, 3), (8, 3, 3, 3), w(8)], [(1, 5, 5, 8)], "Conv2DOptions", window(0, 1, 1)),
     "the filter must be a constant"),
    (("CONCATENATION", [(1, 2, 3, 4), (1, 2, 3, 2)], [(1, 2, 3, 6)], "ConcatenationOptions",
      [(0, "i", 3), (1, "b", RELU6_ACT)]), "a fused activation on CONCATENATION"),
])
def test_what_tnn_cannot_express_is_refused_naming_the_operator(case, fragment):
    data, _ = one_operator(*case)
    with pytest.raises(ConversionError, match=r"^operator 0 \(") as info:
        convert(data)
    assert fragment in str(info.value)
