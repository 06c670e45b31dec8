"""Layers that move or select data: reshapes, transposes, slices, padding, resizing, reductions."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..errors import KernelError
from ..registry import Kernel, float_buffer, register

Shape = Tuple[int, ...]


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def reshape_dims(shape: Shape, target: Sequence[int], axis: int, num_axes: int) -> Shape:
    """TNN's reshape rule: dims before `axis` kept, 0 copies the input dim, one -1 is inferred."""
    if num_axes == -1:
        num_axes = len(target)
    out = list(shape[:axis]) + [1] * len(target)
    infer = [i for i, t in enumerate(target[:num_axes]) if t == -1]
    for j, t in enumerate(target[:num_axes]):
        out[axis + j] = shape[axis + j] if t == 0 else (1 if t == -1 else t)
    if len(infer) > 1:
        raise ValueError(f"shape {list(target)} has more than one -1")
    if infer:
        known = int(np.prod(out))
        out[axis + infer[0]] = int(np.prod(shape)) // known
    if int(np.prod(out)) != int(np.prod(shape)):
        raise ValueError(f"cannot reshape {list(shape)} to {out}")
    return tuple(out)


@register("Reshape")
class Reshape(Kernel):
    """reshape_type 0 reshapes in NCHW order (Caffe, ONNX); 1 in NHWC order (TensorFlow)."""

    def shapes(self, layer, inputs, resource):
        p = layer.params
        return [reshape_dims(tuple(inputs[0]), p["shape"], p["axis"], p["num_axes"])]

    def run(self, layer, state, inputs):
        x = inputs[0]
        p = layer.params
        out = reshape_dims(x.shape, p["shape"], p["axis"], p["num_axes"])
        if p["reshape_type"] == 1 and x.ndim == 4 and len(out) == 4:
            return [np.ascontiguousarray(x.transpose(0, 2, 3, 1).reshape(out[0], out[2], out[3], out[1])
                                         .transpose(0, 3, 1, 2))]
        return [x.reshape(out)]

    def samples_apart(self, layer, inputs):
        p = layer.params
        return p["axis"] >= 1 or (bool(p["shape"]) and p["shape"][0] == 0)


@register("Flatten")
class Flatten(Kernel):
    def shapes(self, layer, inputs, resource):
        shape, axis = inputs[0], layer.params["axis"]
        return [(int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))]

    def run(self, layer, state, inputs):
        return [inputs[0].reshape(self.shapes(layer, [inputs[0].shape], None)[0])]

    def samples_apart(self, layer, inputs):
        return layer.params["axis"] >= 1


@register("Permute")
class Permute(Kernel):
    def shapes(self, layer, inputs, resource):
        return [tuple(inputs[0][i] for i in layer.params["orders"])]

    def run(self, layer, state, inputs):
        return [np.ascontiguousarray(inputs[0].transpose(layer.params["orders"]))]

    def samples_apart(self, layer, inputs):
        return layer.params["orders"][:1] == [0]


@register("Squeeze")
class Squeeze(Kernel):
    def _axes(self, layer, shape):
        axes = layer.params["axes"] or [i for i, d in enumerate(shape) if d == 1]
        return tuple(_axis(a, len(shape)) for a in axes)

    def shapes(self, layer, inputs, resource):
        axes = self._axes(layer, inputs[0])
        return [tuple(d for i, d in enumerate(inputs[0]) if i not in axes)]

    def run(self, layer, state, inputs):
        return [np.squeeze(inputs[0], axis=self._axes(layer, inputs[0].shape))]

    def samples_apart(self, layer, inputs):
        return 0 not in self._axes(layer, inputs[0])


@register("Unsqueeze")
class Unsqueeze(Kernel):
    def shapes(self, layer, inputs, resource):
        rank = len(inputs[0]) + len(layer.params["axes"])
        axes = sorted(_axis(a, rank) for a in layer.params["axes"])
        out = list(inputs[0])
        for a in axes:
            out.insert(a, 1)
        return [tuple(out)]

    def run(self, layer, state, inputs):
        return [inputs[0].reshape(self.shapes(layer, [inputs[0].shape], None)[0])]

    def samples_apart(self, layer, inputs):
        rank = len(inputs[0]) + len(layer.params["axes"])
        return 0 not in {_axis(a, rank) for a in layer.params["axes"]}


@register("ShuffleChannel")
class ShuffleChannel(Kernel):
    per_sample = True

    def run(self, layer, state, inputs):
        x = inputs[0]
        g = layer.params["group"]
        n, c = x.shape[:2]
        return [np.ascontiguousarray(x.reshape((n, g, c // g) + x.shape[2:]).swapaxes(1, 2)).reshape(x.shape)]


@register("SplitV")
class SplitV(Kernel):
    def _slices(self, layer, shape) -> Tuple[int, List[int]]:
        axis = _axis(layer.params["axis"], len(shape))
        slices = list(layer.params["slices"])
        if not slices:
            count = len(layer.outputs)
            if shape[axis] % count:
                raise ValueError(f"{shape[axis]} cannot be split evenly into {count}")
            slices = [shape[axis] // count] * count
        if sum(slices) != shape[axis]:
            raise ValueError(f"slices {slices} do not add up to {shape[axis]}")
        return axis, slices

    def shapes(self, layer, inputs, resource):
        axis, slices = self._slices(layer, inputs[0])
        return [tuple(s if i == axis else d for i, d in enumerate(inputs[0])) for s in slices]

    def run(self, layer, state, inputs):
        axis, slices = self._slices(layer, inputs[0].shape)
        return np.split(inputs[0], np.cumsum(slices)[:-1], axis=axis)

    def samples_apart(self, layer, inputs):
        return _axis(layer.params["axis"], len(inputs[0])) != 0


def _slice_indices(size: int, begin: int, end: int, stride: int) -> np.ndarray:
    """Indices of one sliced axis by TNN's rule (DimsFunctionUtils::StrideSlice)."""
    int_max, int_min = 2**31 - 1, -2**31
    if begin < 0:
        begin += size
    if end == int_max or end > size:
        end = size
    elif end == int_min:
        end = -1
    elif end < 0:
        end += size
    count = (end - begin - 1) // stride + 1 if stride > 0 else (end - begin + 1) // stride + 1
    if count <= 0:
        raise ValueError(f"slice [{begin}:{end}:{stride}] of {size} is empty")
    return begin + np.arange(count) * stride


def _strided_slice(x_shape, begins, ends, axes, strides) -> List[Tuple[int, np.ndarray]]:
    return [(_axis(a, len(x_shape)), _slice_indices(x_shape[_axis(a, len(x_shape))], b, e, s))
            for b, e, a, s in zip(begins, ends, axes, strides)]


class _Slice(Kernel):
    def _plan(self, layer, shape):
        raise NotImplementedError

    def shapes(self, layer, inputs, resource):
        out = list(inputs[0])
        for axis, index in self._plan(layer, inputs[0]):
            out[axis] = index.size
        return [tuple(out)]

    def run(self, layer, state, inputs):
        x = inputs[0]
        for axis, index in self._plan(layer, x.shape):
            x = np.take(x, index, axis=axis)
        return [np.ascontiguousarray(x)]

    def samples_apart(self, layer, inputs):
        return all(axis != 0 for axis, _ in self._plan(layer, inputs[0]))


@register("StridedSlice")
class StridedSlice(_Slice):
    """Begins, ends and strides for every axis in order; an end of 0 means the whole axis."""

    def _plan(self, layer, shape):
        p = layer.params
        if not len(p["begins"]) == len(p["ends"]) == len(p["strides"]) == len(shape):
            raise ValueError(f"slice params of length {len(p['begins'])} for rank {len(shape)}")
        ends = [d if e == 0 else e for e, d in zip(p["ends"], shape)]
        return _strided_slice(shape, p["begins"], ends, range(len(shape)), p["strides"])


@register("StridedSliceV2")
class StridedSliceV2(_Slice):
    """ONNX-style slices: begins, ends, axes and strides per sliced axis."""

    def _plan(self, layer, shape):
        p = layer.params
        return _strided_slice(shape, p["begins"], p["ends"], p["axes"], p["strides"])


@register("Pad")
class Pad(Kernel):
    """Pads H, W and C: mode 0 constant, 1 reflect, 2 edge (TNN ignores the batch pads)."""
    per_sample = True


    MODES = {0: "constant", 1: "reflect", 2: "edge"}

    def _widths(self, layer, rank):
        p = layer.params
        widths = [(0, 0), (p["pad_c_begin"], p["pad_c_end"]), (p["pad_t"], p["pad_b"]), (p["pad_l"], p["pad_r"])]
        if rank != 4:
            raise ValueError("Pad takes NCHW input")
        return widths

    def shapes(self, layer, inputs, resource):
        return [tuple(d + a + b for d, (a, b) in zip(inputs[0], self._widths(layer, len(inputs[0]))))]

    def run(self, layer, state, inputs):
        mode = self.MODES.get(layer.params["mode"])
        if mode is None:
            raise KernelError(f"layer '{layer.name}': unknown pad mode {layer.params['mode']}")
        widths = self._widths(layer, inputs[0].ndim)
        extra = {"constant_values": layer.params["value"]} if mode == "constant" else {}
        return [np.pad(inputs[0], widths, mode=mode, **extra).astype(np.float32, copy=False)]


def _upsample_size(p, h: int, w: int) -> Tuple[int, int]:
    if p.get("output_h") and p.get("output_w"):
        return p["output_h"], p["output_w"]
    return int(round(h * np.float32(p["scale_h"]))), int(round(w * np.float32(p["scale_w"])))


def _linear_weights(out: int, size: int, align: bool):
    """Source index pairs and weights of bilinear resizing along one axis (TNN's rule)."""
    o = np.arange(out, dtype=np.float64)
    if align:
        ratio = (size - 1) / (out - 1) if out > 1 else 0.0
        src = np.float32(ratio) * o
    else:
        ratio = size / out if out > 1 else 0.0
        src = np.clip(np.float32(ratio) * (o + 0.5) - 0.5, 0, size - 1)
    src = src.astype(np.float32)
    lo = src.astype(np.int64)
    hi = np.where(lo < size - 1, lo + 1, lo)
    frac = (src - lo).astype(np.float32)
    return lo, hi, frac


def _cubic_weights(out: int, size: int, align: bool):
    """Four source indices and Keys (A = -0.75) weights per output position."""
    o = np.arange(out, dtype=np.float64)
    scale = ((size - 1) / (out - 1) if align else size / out) if out > 1 else 0.0
    src = (scale * o if align else scale * (o + 0.5) - 0.5).astype(np.float32)
    base = np.floor(src).astype(np.int64)
    t = (src - base).astype(np.float64)
    a = -0.75

    def near(d):
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)
    index = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, size - 1)
    return index, weights.astype(np.float32)


@register("Upsample")
class Upsample(Kernel):
    """mode 1 nearest (index = int(i * in / out)), 2 bilinear, 3 bicubic."""
    per_sample = True


    def shapes(self, layer, inputs, resource):
        n, c, h, w = inputs[0]
        return [(n, c) + _upsample_size(layer.params, h, w)]

    def run(self, layer, state, inputs):
        x = inputs[0]
        p = layer.params
        h, w = x.shape[2:]
        out_h, out_w = _upsample_size(p, h, w)
        if (out_h, out_w) == (h, w):
            return [x]
        align = bool(p["align_corners"])
        if p["mode"] == 1:
            rows = (np.arange(out_h) * np.float32(h / out_h)).astype(np.int64)
            cols = (np.arange(out_w) * np.float32(w / out_w)).astype(np.int64)
            return [np.ascontiguousarray(x[:, :, rows[:, None], cols[None, :]])]
        if p["mode"] == 2:
            r0, r1, fr = _linear_weights(out_h, h, align)
            c0, c1, fc = _linear_weights(out_w, w, align)
            top = x[:, :, r0] * (1 - fr)[:, None] + x[:, :, r1] * fr[:, None]
            return [(top[:, :, :, c0] * (1 - fc) + top[:, :, :, c1] * fc).astype(np.float32)]
        if p["mode"] == 3:
            ri, rw = _cubic_weights(out_h, h, align)
            ci, cw = _cubic_weights(out_w, w, align)
            rows = (x[:, :, ri] * rw[None, None, :, :, None]).sum(3)
            return [(rows[:, :, :, ci] * cw).sum(4).astype(np.float32)]
        raise KernelError(f"layer '{layer.name}': unknown upsample mode {p['mode']}")


@register("Const")
class Const(Kernel):
    def shapes(self, layer, inputs, resource):
        dims = tuple(layer.params["dims"])
        return [dims if dims else tuple(resource["weight"].dims)]

    def prepare(self, layer, resource):
        value = float_buffer(resource, "weight", layer)
        dims = tuple(layer.params["dims"]) or resource["weight"].dims
        return value.reshape(dims)

    def run(self, layer, value, inputs):
        return [value]


REDUCERS = {
    "ReduceMean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: np.sqrt(np.sum(np.square(x), axis=a, keepdims=k)),
    "ReduceLogSum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)),
    "ReduceLogSumExp": lambda x, a, k: np.log(np.sum(np.exp(x), axis=a, keepdims=k)),
    "ReduceSumSquare": lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k),
}


class Reduce(Kernel):
    def _axes(self, layer, rank):
        axes = layer.params["axes"] or list(range(rank))
        return tuple(sorted({_axis(a, rank) for a in axes}))

    def shapes(self, layer, inputs, resource):
        axes, keep = self._axes(layer, len(inputs[0])), layer.params["keep_dims"]
        return [tuple(1 if i in axes else d for i, d in enumerate(inputs[0]) if keep or i not in axes)]

    def run(self, layer, state, inputs):
        x = inputs[0]
        with np.errstate(all="ignore"):
            y = REDUCERS[layer.type](x, self._axes(layer, x.ndim), bool(layer.params["keep_dims"]))
        return [np.asarray(y, dtype=np.float32)]

    def samples_apart(self, layer, inputs):
        return 0 not in self._axes(layer, len(inputs[0]))


register(*REDUCERS)(Reduce)
