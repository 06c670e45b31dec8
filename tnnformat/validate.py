"""Whole-net checks `load` runs after parsing: a Net that passes can be run without surprises.

Parsing checks each line on its own; this module checks them together: the graph (names,
producers, readers, outputs), the params (TNN's int32 and what each value means), the
resources (every one belongs to the proto, and sizes and data types agree with the params and
the blobs' shapes) and the blobs' shapes (shape inference, each blob under a memory cap).
Every problem is a TnnFormatError naming the file and the layer.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .buffer import DataType, RawBuffer, Resource
from .errors import TnnFormatError
from .layer_types import ACTIVATION_VALUES, TNN_TYPE_NUMBERS
from .net import BLOB_SCALE_SUFFIX, Layer, Net

#: Largest blob (bytes of float32 at the proto's input shapes) a model may ask for.
DEFAULT_BLOB_CAP = 4 << 30
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
FLOAT_TYPES = (DataType.FLOAT, DataType.HALF, DataType.BFP16)
Shape = Tuple[int, ...]


def _numbers(value) -> List:
    """The numbers a param holds (a list param holds several; raw tokens hold none)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _param_problem(layer: Layer) -> Optional[str]:
    for key, value in layer.params.items():
        for number in _numbers(value):
            if isinstance(number, int) and not INT32_MIN <= number <= INT32_MAX:
                return f"param '{key}' = {number} does not fit TNN's int32"
            if isinstance(number, float) and not math.isfinite(number):
                return f"param '{key}' = {number} is not a finite float32"
    rule = PARAM_RULES.get(layer.type)
    return rule(layer.params) if rule else None


def _at_least(params: dict, minimum: int, *keys: str) -> Optional[str]:
    for key in keys:
        if params[key] < minimum:
            return f"param '{key}' = {params[key]} must be at least {minimum}"
    return None


def _conv_params(p: dict) -> Optional[str]:
    problem = (_at_least(p, 1, "group", "output_channel", "kernel_h", "kernel_w", "stride_h", "stride_w",
                         "dilation_h", "dilation_w") or _at_least(p, 0, "pad_h", "pad_w"))
    if problem is None and p["output_channel"] % p["group"]:
        problem = f"{p['output_channel']} output channels cannot be split into {p['group']} groups"
    if problem is None and p["activation_type"] not in ACTIVATION_VALUES:
        problem = f"param 'activation_type' = {p['activation_type']} is not one of TNN's {list(ACTIVATION_VALUES)}"
    return problem or _pads_within(p, p["dilation_h"] * (p["kernel_h"] - 1) + 1,
                                   p["dilation_w"] * (p["kernel_w"] - 1) + 1)


def _pads_within(p: dict, limit_h: int, limit_w: int) -> Optional[str]:
    """Pads beyond the kernel's extent only add outputs that see nothing but padding (a
    convolution may reach the extent: SqueezeNet 1.0 pads its 1x1 conv10 by 1)."""
    for pad, limit in (("pad_h", limit_h), ("pad_w", limit_w)):
        if limit >= 0 and p[pad] > limit:
            return f"param '{pad}' = {p[pad]} is larger than the kernel allows ({limit})"
    return None


def _pool_params(p: dict) -> Optional[str]:
    # kernel 0 is global pooling
    return (_at_least(p, 0, "kernel_h", "kernel_w", "pad_h", "pad_w") or _at_least(p, 1, "stride_h", "stride_w")
            or _pads_within(p, p["kernel_h"] - 1, p["kernel_w"] - 1))


def _flags(p: dict, *keys: str) -> Optional[str]:
    """Params TNN reads as a yes/no (or, for pool_type, one of two kinds)."""
    for key in keys:
        if p[key] not in (0, 1):
            return f"param '{key}' = {p[key]} must be 0 or 1"
    return None


PARAM_RULES: Dict[str, Callable[[dict], Optional[str]]] = {
    "Convolution": lambda p: _flags(p, "bias") or _conv_params(p),
    "Deconvolution": lambda p: _flags(p, "bias") or _conv_params(p),
    "Pooling": lambda p: _flags(p, "pool_type", "ceil_mode", "is_adaptive") or _pool_params(p),
    "InnerProduct": lambda p: (_flags(p, "has_bias", "transpose") or _at_least(p, 1, "num_output")
                               or _at_least(p, 0, "axis")),
    "Scale": lambda p: _flags(p, "bias_term"),
    "PReLU": lambda p: _flags(p, "channel_shared", "has_filler"),
}


def _check_graph(net: Net, fail: Callable[..., None]) -> None:
    """Unique layer names, one producer per blob, every read blob produced earlier, every
    output produced."""
    producer: Dict[str, str] = {name: "the input" for name in net.inputs}
    produced_by_layer = {blob for layer in net.layers for blob in layer.outputs}
    names = set()
    for layer in net.layers:
        if layer.name in names:
            fail("a second layer with this name", layer.name)
        names.add(layer.name)
        for blob in layer.inputs:
            if blob not in producer:
                when = "only by a later layer" if blob in produced_by_layer else "by no layer or input"
                fail(f"reads blob '{blob}', which is produced {when}", layer.name)
        for blob in layer.outputs:
            if blob in producer:
                other = producer[blob]
                fail(f"writes blob '{blob}', which {other if other == 'the input' else 'layer ' + repr(other)} "
                     "already produces", layer.name)
            producer[blob] = layer.name
    for blob in net.outputs:
        if blob not in producer:
            fail(f"output blob '{blob}' is produced by no layer or input")


def _check_ownership(net: Net, fail: Callable[..., None]) -> None:
    """Every resource is a layer's or a blob scale of a blob in the proto."""
    layers = {layer.name for layer in net.layers}
    blobs = set(net.all_blobs())
    for name in net.resources:
        if name in layers:
            continue
        if name.endswith(BLOB_SCALE_SUFFIX) and name[:-len(BLOB_SCALE_SUFFIX)] in blobs:
            continue
        fail(f"resource '{name}' belongs to no layer or blob of the proto (is it the proto of this model?)")


def _count(buffer: RawBuffer) -> int:
    return int(buffer.data.size)


def _channels(shape: Shape) -> int:
    return shape[1] if len(shape) >= 2 else 1


class _Resources:
    """Checks of one layer's resource against its params and input shapes; each raises
    _Problem with what is wrong."""

    def __init__(self, layer: Layer, resource: Resource, inputs: Sequence[Shape]):
        self.layer, self.resource, self.inputs = layer, resource, inputs

    def buffer(self, key: str) -> RawBuffer:
        if key not in self.resource:
            raise _Problem(f"its resource has no '{key}' buffer")
        return self.resource[key]

    def count(self, key: str, *allowed: int) -> None:
        found = _count(self.buffer(key))
        if found not in allowed:
            want = " or ".join(str(a) for a in sorted(set(allowed)))
            raise _Problem(f"'{key}' holds {found} values, the params and input shapes need {want}")

    def weights(self, key: str) -> None:
        """Int8 weights with per-channel or per-tensor scales in a quantized layer, float
        weights in a float layer."""
        data_type = self.buffer(key).data_type
        if self.layer.quantized:
            if data_type != DataType.INT8:
                raise _Problem(f"is quantized but its '{key}' is {data_type.name}, not INT8 "
                               "(is the model the quantized one this proto belongs to?)")
            self.count("scale", 1, self.out_channels())
            self.count("zero_point", _count(self.buffer("scale")))
        elif data_type not in FLOAT_TYPES:
            raise _Problem(f"is float in the proto but its '{key}' is {data_type.name} in the model "
                           "(an int8 model with a float proto? the two files do not belong together)")

    def out_channels(self) -> int:
        p = self.layer.params
        return p.get("output_channel", p.get("num_output", 1))

    def input_channels(self) -> int:
        return _channels(self.inputs[0]) if self.inputs else 1


class _Problem(Exception):
    """A resource that does not fit its layer (validate adds the file and the layer)."""


def _conv_resource(r: _Resources) -> None:
    p = r.layer.params
    c_in, out, group = r.input_channels(), p["output_channel"], p["group"]
    if c_in % group:
        raise _Problem(f"its input has {c_in} channels, which cannot be split into {group} groups")
    per_filter = out // group if r.layer.type == "Deconvolution" else c_in // group
    rows = c_in if r.layer.type == "Deconvolution" else out
    r.count("filter", rows * per_filter * p["kernel_h"] * p["kernel_w"])
    r.weights("filter")
    if p["bias"]:
        r.count("bias", out)


def _inner_product_resource(r: _Resources) -> None:
    p = r.layer.params
    features = math.prod(r.inputs[0][p["axis"]:]) if r.inputs else 0
    r.count("weight", p["num_output"] * features)
    r.weights("weight")
    if p["has_bias"]:
        r.count("bias", p["num_output"])


def _affine_resource(r: _Resources) -> None:
    channels = r.input_channels()
    r.count("scale", 1, channels)
    if r.layer.params.get("bias_term", 1) and "bias" in r.resource and _count(r.resource["bias"]):
        r.count("bias", 1, channels)


def _prelu_resource(r: _Resources) -> None:
    r.count("slope", 1) if r.layer.params["channel_shared"] else r.count("slope", 1, r.input_channels())


def _const_resource(r: _Resources) -> None:
    dims = r.layer.params["dims"]
    r.buffer("weight")
    if dims:
        r.count("weight", math.prod(dims))


RESOURCE_RULES: Dict[str, Callable[[_Resources], None]] = {
    "Convolution": _conv_resource, "Deconvolution": _conv_resource, "InnerProduct": _inner_product_resource,
    "BatchNormCxx": _affine_resource, "BatchNormalization": _affine_resource, "Scale": _affine_resource,
    "InstBatchNormCxx": _affine_resource, "PReLU": _prelu_resource, "Const": _const_resource,
}

#: Layer types whose second operand, with a single input blob, is this resource buffer.
CONSTANT_OPERAND = {"MatMul": "weight", **{name: "element" for name in (
    "Add", "Sub", "Mul", "Div", "Maximum", "Minimum", "Greater", "Less", "And", "SquaredDifference")}}


def _check_blob_scale(blob: str, resource: Resource, shape: Optional[Shape]) -> Optional[str]:
    if "scale" not in resource:
        return f"blob scale of '{blob}' has no scale values"
    scale, zero = resource["scale"], resource.get("zero_point")
    if scale.data_type != DataType.FLOAT or (zero is not None and zero.data_type != DataType.INT8):
        return f"blob scale of '{blob}' must hold float scales and int8 zero points"
    allowed = {1} if shape is None else {1, _channels(shape)}
    if _count(scale) not in allowed or (zero is not None and _count(zero) != _count(scale)):
        return (f"blob scale of '{blob}' holds {_count(scale)} scales and "
                f"{_count(zero) if zero is not None else 0} zero points; the blob needs 1 or {max(allowed)}")
    if not np.all(np.isfinite(scale.numpy(np.float32))):
        return f"blob scale of '{blob}' holds NaN or infinite values"
    return None


def _check_presence(net: Net, fail: Callable[..., None]) -> None:
    """Layers that need a resource have one, with the buffer a constant operand lives in."""
    for layer in net.layers:
        resource = net.resources.get(layer.name)
        operand = CONSTANT_OPERAND.get(layer.type)
        if operand is not None and len(layer.inputs) == 1 and operand not in (resource or {}):
            fail(f"{layer.type_str} with one input needs its '{operand}' constant in the model", layer.name)
        if layer.type in RESOURCE_RULES and resource is None:
            fail(f"{layer.type_str} needs a resource and the model has none for it "
                 "(is the model the one this proto belongs to?)", layer.name)
        if layer.quantized:
            for blob in layer.inputs + layer.outputs:
                if net.blob_scale(blob) is None:
                    fail(f"is {layer.type_str} but blob '{blob}' has no blob scale in the model", layer.name)


def _check_resources(net: Net, shapes: Dict[str, Shape], fail: Callable[..., None]) -> None:
    """Sizes and data types of the resources against params and shapes."""
    for layer in net.layers:
        rule = RESOURCE_RULES.get(layer.type)
        in_shapes = [shapes[b] for b in layer.inputs if b in shapes]
        if rule is not None and len(in_shapes) == len(layer.inputs):  # unknown after a type we cannot infer
            try:
                rule(_Resources(layer, net.resources[layer.name], in_shapes))
            except _Problem as exc:
                fail(f"{layer.type_str}: {exc}", layer.name)
    layers = {layer.name for layer in net.layers}
    for name, resource in net.resources.items():
        for key, buffer in resource.items():
            if buffer.dims and math.prod(buffer.dims) != _count(buffer):
                fail(f"resource '{name}': buffer '{key}' has dims {list(buffer.dims)} but {_count(buffer)} values",
                     name if name in layers else None)
        if name.endswith(BLOB_SCALE_SUFFIX) and name not in layers:
            blob = name[:-len(BLOB_SCALE_SUFFIX)]
            problem = _check_blob_scale(blob, resource, shapes.get(blob))
            if problem:
                fail(problem)


def _check_shapes(net: Net, blob_cap: int, fail: Callable[..., None]) -> Dict[str, Shape]:
    from kernels.errors import KernelError  # kernels builds on tnnformat: imported when used
    from kernels.shapes import infer_shapes

    try:
        return infer_shapes(net, blob_cap=blob_cap, skip_unknown=True)
    except KernelError as exc:
        fail(str(exc))
    return {}


def validate(net: Net, proto_path: Optional[str] = None, model_path: Optional[str] = None, *,
             blob_cap: int = DEFAULT_BLOB_CAP) -> Dict[str, Shape]:
    """Check `net` as a whole (see the module docstring); return every blob's shape.

    Without `model_path` the net is taken to have no resources yet: resources and shapes
    (which may depend on constant resources) are not checked."""
    def fail(message: str, layer: Optional[str] = None, path: Optional[str] = proto_path) -> None:
        raise TnnFormatError(message, path=path, layer=layer)

    _check_graph(net, fail)
    for layer in net.layers:
        if layer.type not in TNN_TYPE_NUMBERS:
            fail(f"'{layer.type_str}' is not a TNN layer type", layer.name)
        problem = _param_problem(layer)
        if problem:
            fail(f"{layer.type_str}: {problem}", layer.name)
    for name, dims in net.inputs.items():
        if any(d > INT32_MAX for d in dims):
            fail(f"input '{name}' has a dimension beyond TNN's int32: {list(dims)}")
    if model_path is None:
        return {}

    def fail_model(message: str, layer: Optional[str] = None) -> None:
        fail(message, layer, model_path)

    _check_ownership(net, fail_model)
    _check_presence(net, fail_model)
    shapes = _check_shapes(net, blob_cap, fail)
    _check_resources(net, shapes, fail_model)
    return shapes
