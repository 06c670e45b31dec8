"""Every TNN layer type we know: its name, TNN's LayerType number, its params and its resource.

This table is the one place that knows a layer type's file layout. The facts come from TNN's
`source/tnn/core/layer_type.{h,cc}` (names and numbers) and the layer interpreters in
`source/tnn/interpreter/tnn/layer_interpreter/` (param order, defaults for values older files
omit, resource body). Param names follow TNN's proto order; where TNN stores a pair as
(w, h) internally but writes (h, w), we keep the file order and name the values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .params import Field, Float, Int, IntList, IntRest, Tokens
from .resource_fields import Buffer, Flag, IfInt8, Item, LayerName, ZeroPointScale

FLT_MAX = float(np.finfo(np.float32).max)
#: TNN's ActivationType (layer_param.h), a convolution's `activation_type` param: none or a
#: fused activation.
RELU, RELU6, SIGMOID_MUL = 0x0001, 0x0002, 0x0100
ACTIVATION_VALUES = (0, RELU, RELU6, SIGMOID_MUL)


@dataclass(frozen=True)
class LayerSpec:
    name: str
    number: int
    params: Tuple[Field, ...] = ()
    resource: Optional[Tuple[Item, ...]] = None  # None: the layer type has no resource


#: Every type name TNN's reader accepts, with its LayerType number (core/layer_type.cc).
#: A model file names a resource's type with one of these; a name outside this table means
#: an old file whose header holds the layer name instead.
TNN_TYPE_NUMBERS: Dict[str, int] = {
    "Convolution": 1, "Convolution_nhwc": 1, "DynamicRangeQuantizedConvolution": 1,
    "QuantizedConvolution": 1, "QuantizedConvolution_nhwc": 1, "BatchNormCxx": 2,
    "BatchNormCxx_nhwc": 2, "BatchNormalization": 2, "Pooling": 4, "Pooling_nhwc": 4,
    "Pooling_split_CC": 4, "QuantizedPooling": 4, "QuantizedReLU": 5, "ReLU": 5, "Relu": 5,
    "Split": 7, "Concat": 8, "Concat_nhwc": 8, "QuantizedConcat": 8, "QuantizedReshape": 9,
    "QuantizedReshapeTensorflow": 9, "Reshape": 9, "Flatten": 10, "Flatten_nhwc": 10,
    "Dropout": 11, "LRN": 12, "Proposal": 13, "ROIPooling": 14, "Eltwise": 15, "Scale": 16,
    "ArbitraryDimensionSpp": 17, "BatchNorm": 18, "DynamicRangeQuantizedInnerProduct": 19,
    "InnerProduct": 19, "InnerProduct_nhwc": 19, "QuantizedInnerProduct": 19, "ReshapeC": 20,
    "Softmax": 21, "SoftmaxCaffe": 21, "Softmax_nhwc": 21, "Deconvolution": 22,
    "QuantizedSigmoid": 23, "Sigmoid": 23, "Permute": 32, "QuantizedPermute": 32, "PriorBox": 33,
    "DetectionOutput": 34, "PReLU": 35, "PReLU_nhwc": 35, "Add": 38, "QuantizedAdd": 38,
    "Tanh": 39, "LeakyRelu": 40, "Abs": 41, "Mul": 42, "InstBatchNormCxx": 43, "Pad": 44,
    "Normalize": 45, "QuantizeV2": 46, "Lstm": 47, "Dequantize": 50, "ConvolutionDepthwise": 52,
    "BiasAdd": 54, "QuantizedBiasAdd": 54, "QuantizedSum": 54, "ContinuationIndicator": 55,
    "StridedSlice": 57, "StridedSlice_nhwc": 57, "ReshapeTensorflow": 58, "lstm_ctc": 61,
    "LabelsequenceAccuracy": 62, "ShuffleChannel": 63, "Im2colTranspose": 64, "Im2col": 65,
    "Transpose": 66, "FileInput": 67, "Reverse": 68, "Power": 69, "Neg": 70, "Tensordot": 71,
    "Shape": 72, "Prod": 73, "Const": 100, "Identity": 101, "Slice": 102, "SliceCaffe": 102,
    "Cast": 103, "DynamicRangeQuantizedGather": 104, "Gather": 104,
    "DynamicRangeQuantizedMatMul": 105, "MatMul": 105, "Pack": 106, "Placeholder": 107, "Sub": 108,
    "Add_tf": 109, "Mul_tf": 110, "Slice_tf": 111, "Split_tf": 113, "NegReLUMul": 114,
    "NCHW2NHWC": 115, "NHWC2NCHW": 116, "Squeeze": 118, "PReLU_X": 121, "Requantize": 122,
    "QuantizedBNGlobal": 123, "QuantizedBatchNormCxx": 124, "QuantizedMul": 124, "ReLU6": 125,
    "Relu6": 125, "QuantizeNCHWTONCHW4": 127, "DequantizeNCHW4TONCHW": 128, "Square": 129,
    "Sqrt": 130, "Reorg": 131, "Elu": 132, "ReduceSum": 133, "Reduce_Sum": 133, "RealDiv": 134,
    "BN": 135, "Interp": 136, "Maximum": 137, "Rsqrt": 138, "DetectionOutputREF": 139,
    "Minimum": 140, "Exp": 141, "QuantizedBatchNormCxxSignedInput": 143,
    "QuantizedAddSignedInput": 144, "QuantizedConvolutionSignedInput": 145,
    "QuantizedReluSignedInput": 146, "LogSigmoid": 147, "Repeat": 148, "Tile": 148,
    "QuantizedUpsample": 149, "Upsample": 149, "Pooling_nchwc4": 150,
    "QConv2DDequantizeMulAddQuantizeQRelu": 151, "DequantizeBnAddBnQuantize": 152, "SplitV": 153,
    "BatchNormQuantizeV2": 154, "QuantizeV2ByChannel": 155, "DequantizeNCHW4TONCHWByChannel": 156,
    "QuantizedConvolutionByChannel": 157, "QFusedCBRByChannel": 158, "Unpack": 159, "Fill": 160,
    "ResizeBicubic": 161, "FusedBatchNorm": 162, "Unsqueeze": 164, "Gru": 165, "HardTanH": 166,
    "AdaptiveAvgPool2d": 167, "AdaptiveMaxPool2d": 168, "ReduceMean": 169, "Reformat": 170,
    "Clip": 171, "HardSigmoid": 172, "HardSwish": 173, "Softplus": 174, "Div": 175, "Sign": 176,
    "ReduceMax": 177, "Cos": 178, "Acos": 179, "Sin": 180, "Asin": 181, "Tan": 182, "Atan": 183,
    "Log": 184, "Reciprocal": 185, "Floor": 186, "Selu": 187, "ReduceL1": 188, "ReduceL2": 189,
    "ReduceLogSum": 190, "ReduceLogSumExp": 191, "ReduceMin": 192, "ReduceProd": 193,
    "ReduceSumSquare": 194, "Ceil": 195, "SignedMul": 196, "DetectionPostProcess": 197,
    "SquaredDifference": 198, "ArgMaxOrMin": 199, "Convolution3D": 201, "Pooling3D": 202,
    "Convolution1D": 203, "Pooling1D": 204, "HDRGuide": 302, "PixelShuffle": 303, "Expand": 304,
    "ScatterND": 305, "StridedSliceV2": 306, "Erf": 307, "ConstantOfShape": 308, "NonZero": 309,
    "DynamicRangeQuantizedLSTMONNX": 310, "LSTMONNX": 310, "Range": 311, "Size": 312,
    "BitShift": 313, "Histogram": 314, "GatherND": 315, "PadV2": 316, "RoiAlign": 317,
    "GroupNorm": 318, "OneHot": 319, "Softsign": 320, "Einsum": 321, "Inverse": 322,
    "GridSample": 323, "Equal": 324, "Where": 325, "LayerNorm": 326, "GELU": 327, "TopK": 328,
    "Not": 329, "LogSoftmax": 330, "ScatterElements": 331, "And": 332, "Greater": 333, "Less": 334,
    "NonMaxSuppression": 335, "Scatter": 336, "Swish": 401, "GLU": 402, "BlobScale": 600,
    "CbamFusedReduce": 800, "CbamFusedPooling": 801, "Dummy": 1000, "AnyType": 1001,
}

#: Params and body of a type TNN knows but we do not: the tokens are kept verbatim.
UNKNOWN_PARAMS: Tuple[Field, ...] = (Tokens(),)

_SPECS: Dict[str, LayerSpec] = {}


def _declare(names: Sequence[str], number: int, params: Sequence[Field] = (),
             resource: Optional[Sequence[Item]] = None) -> None:
    for name in names:
        if name in _SPECS:
            raise ValueError(f"layer type {name} declared twice")
        _SPECS[name] = LayerSpec(name, number, tuple(params),
                                 None if resource is None else tuple(resource))


def spec(type_name: str) -> Optional[LayerSpec]:
    """The declaration of a base type name (no `Quantized` prefix), or None if unknown."""
    return _SPECS.get(type_name)


def split_type(type_str: str) -> Tuple[str, bool]:
    """("QuantizedConvolution") -> ("Convolution", True); names without prefix pass through."""
    if type_str.startswith("Quantized") and type_str[len("Quantized"):] in _SPECS:
        return type_str[len("Quantized"):], True
    return type_str, False


def spec_by_number(number: int) -> Optional[LayerSpec]:
    """The first declared type with TNN's LayerType `number` (old model files name no type)."""
    for layer_spec in _SPECS.values():
        if layer_spec.number == number:
            return layer_spec
    return None


def known_types() -> Tuple[str, ...]:
    return tuple(sorted(_SPECS))


# ---- convolution, pooling, fully connected ------------------------------------------------
_declare(["Convolution"], 1, (
    Int("group"), Int("input_channel"), Int("output_channel"),
    Int("kernel_h"), Int("kernel_w"), Int("stride_h"), Int("stride_w"),
    Int("pad_h"), Int("pad_w"), Int("bias", 0), Int("pad_type", 0),
    Int("dilation_h", 1), Int("dilation_w", 1), Int("activation_type", 0),
), (
    LayerName(), Flag("bias"), Buffer("filter"), Buffer("bias", when="bias"),
    IfInt8("filter", [ZeroPointScale()]),
))
_declare(["Deconvolution"], 22, _SPECS["Convolution"].params, _SPECS["Convolution"].resource)

_declare(["Pooling"], 4, (
    Int("pool_type"),  # 0 max, 1 average
    Int("kernel_h"), Int("kernel_w"),  # 0: the input's size (global pooling with pad_type -1)
    Int("stride_h"), Int("stride_w"), Int("pad_h"), Int("pad_w"),
    Int("kernel_index_h", -1), Int("kernel_index_w", -1),
    Int("pad_type", 0), Int("ceil_mode", 0), Int("is_adaptive", 0),
    Int("output_h", 0), Int("output_w", 0),
))

_declare(["InnerProduct"], 19, (
    Int("num_output"), Int("has_bias"), Int("transpose"), Int("axis"),
), (
    LayerName(), Buffer("weight"), Buffer("bias"), IfInt8("weight", [ZeroPointScale()]),
))

_declare(["MatMul"], 105, (Int("weight_position", -1),), (
    Buffer("weight"), IfInt8("weight", [Buffer("scale")]),
))

# ---- normalization -----------------------------------------------------------------------
_declare(["BatchNormCxx", "BatchNormalization"], 2, (), (Buffer("scale"), Buffer("bias")))
_declare(["Scale"], 16, (Int("axis"), Int("num_axes"), Int("bias_term")), (
    LayerName(), Flag("bias_term"), Buffer("scale"), Buffer("bias", when="bias_term"),
))
_declare(["InstBatchNormCxx"], 43, (Int("channels", 0), Float("eps", float(np.float32(1e-5)))),
         (Buffer("scale"), Buffer("bias")))
_declare(["LayerNorm"], 326, (Int("reduce_dims_size", 0), Float("eps", float(np.float32(1e-5)))))
_declare(["GroupNorm"], 318, (Int("group", 0), Float("eps", float(np.float32(1e-5)))))
_declare(["LRN"], 12, (Float("alpha"), Float("beta"), Float("bias"), Int("size")))
_declare(["Normalize"], 45, (
    Int("across_spatial", 0), Float("epsilon", float(np.float32(1e-12))),
    Int("channel_shared", 1), Int("axis", 1), Int("p", 2),
))

# ---- activations -------------------------------------------------------------------------
for _name, _number in [("ReLU", 5), ("Relu", 5), ("ReLU6", 125), ("Relu6", 125), ("Tanh", 39),
                       ("Abs", 41), ("Exp", 141), ("Sqrt", 130), ("Square", 129),
                       ("Dropout", 11), ("Identity", 101)]:
    _declare([_name], _number)
for _name, _number in [("Sigmoid", 23), ("Swish", 401), ("Log", 184), ("Reciprocal", 185),
                       ("Floor", 186), ("Ceil", 195), ("Softsign", 320), ("Softplus", 174),
                       ("Rsqrt", 138), ("Erf", 307), ("Neg", 70), ("Not", 329), ("Cos", 178),
                       ("Acos", 179), ("Sin", 180), ("Asin", 181), ("Tan", 182), ("Atan", 183)]:
    _declare([_name], _number)
_declare(["Clip"], 171, (Float("min", -FLT_MAX), Float("max", FLT_MAX)))
_declare(["HardSigmoid"], 172, (Float("alpha", 1.0), Float("beta", 0.0)))
_declare(["HardSwish"], 173, (Float("alpha", 1.0), Float("beta", 0.0)))
_declare(["Elu"], 132, (Float("alpha", 1.0),))
_declare(["Power"], 69, (Float("exponent", 1.0), Float("scale", 1.0), Float("shift", 0.0)))
_declare(["Selu"], 187, (Float("alpha", float(np.float32(1.67326319))), Float("gamma", float(np.float32(1.05070102)))))
_declare(["PReLU"], 35, (Int("channel_shared", 0), Int("has_filler", 0)), (
    LayerName(), Buffer("slope"),
))

# ---- element-wise binary ops: the second operand may be a constant from the model ---------
for _name, _number in [("Add", 38), ("Sub", 108), ("Mul", 42), ("Div", 175), ("Maximum", 137),
                       ("Minimum", 140), ("Greater", 333), ("Less", 334), ("And", 332),
                       ("SquaredDifference", 198)]:
    _declare([_name], _number, (Int("weight_input_index", 1),), (Buffer("element"),))

# ---- shape and data movement -------------------------------------------------------------
_declare(["Concat"], 8, (Int("axis", 1),))
_declare(["Softmax", "SoftmaxCaffe"], 21, (Int("axis", 1),))
_declare(["LogSoftmax"], 330, (Int("axis", 1),))
_declare(["Flatten"], 10, (Int("axis"),))
_declare(["Cast"], 103, (Int("to", 0),))
_declare(["ArgMaxOrMin"], 199, (Int("mode", 0), Int("axis", 0), Int("keep_dims", 1), Int("select_last_index", 0)))
_declare(["Expand"], 304, (IntList("shape", []),))
_declare(["Tile", "Repeat"], 148, (IntRest("reps"),))
_declare(["PixelShuffle"], 303, (Int("upscale_factor"),))
_declare(["Reshape"], 9, (
    Int("axis", 0), Int("num_axes", 0), IntList("shape"), Int("reshape_type", 0),
))
_declare(["Permute"], 32, (IntList("orders"),))
_declare(["Squeeze"], 118, (IntList("axes", []),))
_declare(["Unsqueeze"], 164, (IntList("axes", []),))
_declare(["ShuffleChannel"], 63, (Int("group", 1),))
_declare(["SplitV"], 153, (Int("axis", 0), IntList("slices", [])))
_declare(["StridedSlice"], 57, (IntList("begins"), IntList("ends"), IntList("strides")))
_declare(["StridedSliceV2"], 306, (
    IntList("begins"), IntList("ends"), IntList("axes"), IntList("strides"),
))
_declare(["Upsample"], 149, (
    Int("mode"),  # 1 nearest, 2 bilinear, 3 cubic
    Float("scale_h"), Float("scale_w"), Int("align_corners", 0),
    Int("output_h", None), Int("output_w", None),  # written only when both are set
))
_declare(["Pad"], 44, (
    Int("pad_n_begin", 0), Int("pad_n_end", 0),
    Int("pad_t"), Int("pad_b"), Int("pad_l"), Int("pad_r"),
    Int("pad_c_begin", 0), Int("pad_c_end", 0),
    Int("mode", 0),  # 0 constant, 1 reflect, 2 edge
    Float("value", 0.0),
))
_declare(["Const"], 100, (IntList("dims", []),), (Buffer("weight"),))
_declare(["Gather"], 104, (
    Int("axis", 0), Int("data_in_resource", 0), Int("indices_in_resource", 1),
), (
    Flag("data_in_resource"), Buffer("data", when="data_in_resource"),
    Flag("indices_in_resource"), Buffer("indices", when="indices_in_resource"),
    IfInt8("data", [Buffer("scale")]),
))

# ---- reductions: keep_dims then every remaining value is an axis ----------------------------
for _name, _number in [("ReduceMean", 169), ("ReduceSum", 133), ("ReduceMax", 177),
                       ("ReduceMin", 192), ("ReduceProd", 193), ("ReduceL1", 188),
                       ("ReduceL2", 189), ("ReduceLogSum", 190), ("ReduceLogSumExp", 191),
                       ("ReduceSumSquare", 194)]:
    _declare([_name], _number, (Int("keep_dims"), IntRest("axes")))

# ---- int8 data -----------------------------------------------------------------------------
#: A blob's int8 scale, stored as the resource `<blob>_scale_data_`; it never appears in a proto.
_declare(["BlobScale"], 600, (), (ZeroPointScale(), Buffer("bias")))
