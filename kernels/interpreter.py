"""The graph runner: layers in proto order, blobs freed after their last reader.

Float layers run the float kernels. A quantized layer (TNN's `Quantized` prefix) runs its
kernel's int8 path on int8 inputs: float blobs entering it are quantized with their blob
scale and int8 blobs entering a float layer are dequantized, as TNN's inserted reformat layers
do. A quantized layer type without an int8 path runs its float kernel between a dequantize
and a quantize. Like TNN's runtime, the model first gets TNN's load-time fusions
(`runtime_graph`): activations into the convolutions before them and, in quantized models, an
Add into the 1x1 convolution before it. They change int8 results (no rounding in between), and
for float models save a pass over memory; the fused-away blobs (a convolution's output before
its ReLU) do not exist at run time, in TNN as here.

Narrower activations are simulated on the int8 arithmetic: a blob given fewer than 8 bits in
`activation_bits` has its int8 codes clamped to the symmetric b-bit range wherever it is
quantized or an int8 kernel produces it.
"""
from __future__ import annotations

from functools import cached_property
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

import numpy as np

from tnnformat import Layer, Net

from .errors import KernelError
from .int8 import Int8Blob, blob_scale, limit_bits, quantize
from .registry import kernel_for
from .shapes import batch_mismatch, shapes_at_batch
from .threads import map_batch_parts, parallel_batches_possible
from .tnn_optimizer import runtime_graph

Hook = Callable[[Optional[Layer], str, np.ndarray], None]
Value = Union[np.ndarray, Int8Blob]


class Interpreter:
    """Runs a TNN Net on batched float32 NCHW inputs, with TNN's semantics, float and int8.

    `forward(inputs, hook=...)` calls `hook(layer, blob, value)` for every network input
    (layer None) and every blob a layer produces, in execution order, as TNN's forward
    callback does; int8 blobs are shown dequantized. `steps(inputs)` yields the same as a
    generator, so that two models can run side by side. Blobs are released after their last
    reader unless listed in `keep`. `activation_bits` (blob name -> bits) narrows the int8
    codes of those blobs, see the module docstring; blob names are those of the runtime graph.
    With `check_finite` (the default), NaN or infinity in a result is a KernelError naming the
    first layer that produced it (numpy's own warnings are silenced during a forward).
    """

    def __init__(self, net: Net, activation_bits: Optional[Dict[str, int]] = None, check_finite: bool = True):
        self.check_finite = check_finite
        self.net = net = runtime_graph(net)
        self.activation_bits: Dict[str, int] = dict(activation_bits or {})
        self.kernels = [kernel_for(layer) for layer in net.layers]
        self.states = []
        self.scales: List[tuple] = []
        for kernel, layer in zip(self.kernels, net.layers):
            resource = net.resources.get(layer.name, {})
            if layer.quantized:
                ins = [blob_scale(net, layer, b) for b in layer.inputs]
                outs = [blob_scale(net, layer, b) for b in layer.outputs]
                self.scales.append((ins, outs))
                self.states.append(kernel.prepare_int8(layer, resource, ins, outs) if kernel.has_int8
                                   else kernel.prepare(layer, resource))
            else:
                self.scales.append(None)
                self.states.append(kernel.prepare(layer, resource))
        self._independent: Optional[bool] = None
        self.last_use: Dict[str, int] = {}
        for index, layer in enumerate(net.layers):
            for blob in layer.inputs:
                self.last_use[blob] = index
        self._into, self._assembled = self._concat_plan()

    def _concat_plan(self) -> tuple:
        """Float concatenations along channels whose every input is the only output of a float
        layer that can write into a given array (convolutions, ReLU), read by nothing else:
        those layers write straight into their slice of the concatenation (one copy of every
        such blob saved). Returns (producer index -> (concatenation blob, its per-sample shape,
        first channel, channels)) and (concatenation index -> its blob)."""
        readers: Dict[str, int] = {}
        for layer in self.net.layers:
            for blob in layer.inputs:
                readers[blob] = readers.get(blob, 0) + 1
        producer = {blob: i for i, layer in enumerate(self.net.layers) for blob in layer.outputs}
        into, assembled = {}, {}
        for index, layer in enumerate(self.net.layers):
            if layer.type != "Concat" or layer.quantized or len(set(layer.inputs)) != len(layer.inputs):
                continue
            makers = [producer.get(b) for b in layer.inputs]
            if any(m is None or readers[b] != 1 or b in self.net.outputs or not self._writes_into(m)
                   for m, b in zip(makers, layer.inputs)):
                continue
            shapes = self.sample_shapes
            if shapes is None:
                return {}, {}
            blob, shape = layer.outputs[0], tuple(shapes[layer.outputs[0]][1:])
            if len(shape) != 3 or layer.params["axis"] % 4 != 1:
                continue
            first = 0
            for m, part in zip(makers, layer.inputs):
                into[m] = (blob, shape, first, shapes[part][1])
                first += shapes[part][1]
            assembled[index] = blob
        return into, assembled

    def _writes_into(self, index: int) -> bool:
        layer = self.net.layers[index]
        return self.scales[index] is None and len(layer.outputs) == 1 and hasattr(self.kernels[index], "run_into")

    def _check_inputs(self, inputs: Dict[str, np.ndarray]) -> Dict[str, Value]:
        blobs: Dict[str, Value] = {}
        for name, shape in self.net.inputs.items():
            if name not in inputs:
                raise KernelError(f"input '{name}' is missing (the model takes {list(self.net.inputs)})")
            value = np.asarray(inputs[name], dtype=np.float32)
            expected = tuple(shape)
            if value.ndim != len(expected) or tuple(value.shape[1:]) != expected[1:]:
                raise KernelError(f"input '{name}' has shape {list(value.shape)}, the model expects "
                                  f"{list(expected)} (any batch size)")
            blobs[name] = value
        extra = set(inputs) - set(self.net.inputs)
        if extra:
            raise KernelError(f"unknown input(s) {sorted(extra)}; the model takes {list(self.net.inputs)}")
        return blobs

    @staticmethod
    def _float(value: Value) -> np.ndarray:
        return value.dequantize() if isinstance(value, Int8Blob) else value

    def _run(self, index: int, layer: Layer, args: List[Value]) -> List[Value]:
        kernel, state, scales = self.kernels[index], self.states[index], self.scales[index]
        if scales is None:
            return kernel.run(layer, state, [self._float(a) for a in args])
        ins, outs = scales
        bits = self.activation_bits
        int8_args = [a if isinstance(a, Int8Blob) else quantize(a, s, bits.get(b))
                     for b, a, s in zip(layer.inputs, args, ins)]
        if kernel.has_int8:
            results = kernel.run_int8(layer, state, int8_args, outs)
            return [Int8Blob(limit_bits(r, bits.get(b)), s) for b, r, s in zip(layer.outputs, results, outs)]
        floats = kernel.run(layer, state, [a.dequantize() for a in int8_args])
        return [quantize(f, s, bits.get(b)) for b, f, s in zip(layer.outputs, floats, outs)]

    def _run_planned(self, index: int, layer: Layer, args: List[Value],
                     concatenations: Dict[str, np.ndarray]) -> List[Value]:
        """`_run`, except where the concatenation plan has a convolution write into its slice
        of a concatenation, and that concatenation then take the assembled buffer."""
        target = self._into.get(index)
        if target is not None:
            blob, shape, first, channels = target
            whole = concatenations.get(blob)
            if whole is None:
                whole = concatenations[blob] = np.empty((args[0].shape[0],) + shape, np.float32)
            out = whole[:, first:first + channels]
            self.kernels[index].run_into(layer, self.states[index], [self._float(a) for a in args], out)
            return [out]
        if index in self._assembled:
            whole = concatenations.pop(self._assembled[index], None)
            if whole is not None and all(isinstance(a, np.ndarray) and a.base is whole for a in args):
                return [whole]
        return self._run(index, layer, args)

    def forward(self, inputs: Dict[str, np.ndarray], hook: Optional[Hook] = None,
                keep: Iterable[str] = (), codes: bool = False) -> Dict[str, np.ndarray]:
        """The model outputs (and any blobs named in `keep`) for `inputs`, as float32.

        Without a hook, a batch is split across the machine's cores (see threads.py). With
        `codes`, the hook gets int8 blobs as they are (Int8Blob), not dequantized."""
        blobs = self._check_inputs(inputs)
        for name, value in blobs.items():
            if self.check_finite and not np.isfinite(value).all():
                raise KernelError(f"input '{name}' holds NaN or infinite values")
        batch = min(v.shape[0] for v in blobs.values()) if blobs else 0
        with np.errstate(all="ignore"):
            if hook is None and batch >= 2 and parallel_batches_possible() and \
                    all(v.shape[0] == batch for v in blobs.values()) and self.batch_independent():
                results = self._forward_split(dict(blobs), keep)
            else:
                results = self._forward(dict(blobs), hook, keep, each=hook is not None, codes=codes)
            if self.check_finite and hook is None and not all(np.isfinite(v).all() for v in results.values()):
                self._forward(blobs, None, keep, each=True)  # finds and names the first layer
                bad = next(name for name, v in results.items() if not np.isfinite(v).all())
                raise KernelError(f"blob '{bad}' holds NaN or infinite values")
        return results

    def forward_layers(self, blobs: Dict[str, np.ndarray], run: List[int], wanted: Iterable[str]
                       ) -> Dict[str, np.ndarray]:
        """Only the layers at indices `run` (ascending), the blobs they read but do not make
        taken from `blobs` (float values, e.g. kept from a run of another model that agrees
        up there; an int8 layer requantizes a dequantized blob of its own scale exactly).
        Returns the `wanted` blobs as float32. What sensitivity analysis runs: the part of
        the graph after the layers that changed."""
        values: Dict[str, Value] = dict(blobs)
        wanted = list(wanted)
        last = {b: i for i in run for b in self.net.layers[i].inputs}
        with np.errstate(all="ignore"):
            for index in run:
                layer = self.net.layers[index]
                values.update(zip(layer.outputs, self._run(index, layer, [values[b] for b in layer.inputs])))
                for blob in layer.inputs:
                    if last[blob] == index and blob not in wanted:
                        values.pop(blob, None)
        return {name: self._float(values[name]) for name in wanted}

    def batch_independent(self) -> bool:
        """True when images can run apart: every blob's first dim is the batch (its shapes at
        batch 1 and 2 differ exactly there) and no layer mixes samples (a softmax, slice,
        concatenation or reduction along the batch axis). Computed once."""
        if self._independent is None:
            one = self.sample_shapes
            try:
                self._independent = one is not None and batch_mismatch(self.net) is None and \
                    all(kernel.samples_apart(layer, [one[b] for b in layer.inputs])
                        for kernel, layer in zip(self.kernels, self.net.layers))
            except (KernelError, ValueError, IndexError, KeyError):
                self._independent = False
        return self._independent

    @cached_property
    def sample_shapes(self) -> Optional[Dict[str, tuple]]:
        """Every blob's shape at batch 1, None when they cannot be inferred."""
        try:
            return shapes_at_batch(self.net, 1)
        except (KernelError, ValueError, IndexError, KeyError):
            return None

    def _forward_split(self, blobs: Dict[str, np.ndarray], keep: Iterable[str]) -> Dict[str, np.ndarray]:
        keep = list(keep)
        results = map_batch_parts(lambda part: self._forward(part, None, keep, each=False), blobs)
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    def steps(self, inputs: Dict[str, np.ndarray], codes: bool = False) -> Iterator[Tuple[Optional[Layer], str, Value]]:
        """The forward one blob at a time, as a generator of what `forward`'s hook would get:
        (None, name, value) for each input, then (layer, blob, value) as layers run; int8
        blobs dequantized unless `codes`. A caller can run two models side by side and drop
        each blob once it is used (the int8 check holds a few blobs, not a whole run's). No
        batch split and no finiteness check; the caller sets numpy's error state around it."""
        blobs = self._check_inputs(inputs)
        for layer, blob, value in self._steps(blobs, set(self.net.outputs), each=False):
            yield layer, blob, value if codes else self._float(value)

    def _steps(self, blobs: Dict[str, Value], wanted: Set[str], each: bool
               ) -> Iterator[Tuple[Optional[Layer], str, Value]]:
        """One pass, blob by blob; `blobs` ends up holding the `wanted` ones. `each`: check
        every layer's float results for NaN/inf (if check_finite)."""
        for name, value in list(blobs.items()):
            yield None, name, value
        concatenations: Dict[str, np.ndarray] = {}  # assembled in place (see _concat_plan)
        for index, layer in enumerate(self.net.layers):
            try:
                args = [blobs[b] for b in layer.inputs]
            except KeyError as exc:
                raise KernelError(f"layer '{layer.name}' reads blob '{exc.args[0]}', which no earlier "
                                  "layer or input produces") from None
            try:
                outputs = self._run_planned(index, layer, args, concatenations)
            except KernelError:
                raise
            except (ValueError, IndexError, ZeroDivisionError, TypeError) as exc:
                shapes = [list(self._float(a).shape) for a in args]
                raise KernelError(f"layer '{layer.name}' ({layer.type_str}) failed on input shapes "
                                  f"{shapes}: {exc}") from None
            except MemoryError:
                shapes = [list(self._float(a).shape) for a in args]
                raise KernelError(f"layer '{layer.name}' ({layer.type_str}) ran out of memory on input "
                                  f"shapes {shapes}") from None
            if each and self.check_finite:
                self._check_finite(layer, outputs)
            for blob, value in zip(layer.outputs, outputs):
                blobs[blob] = value
                yield layer, blob, value
            for blob in set(layer.inputs) | set(layer.outputs):
                if self.last_use.get(blob, -1) <= index and blob not in wanted:
                    blobs.pop(blob, None)
        missing = sorted(b for b in wanted if b not in blobs)
        if missing:
            raise KernelError(f"blob '{missing[0]}' is never produced")

    def _forward(self, blobs: Dict[str, Value], hook: Optional[Hook], keep: Iterable[str],
                 each: bool, codes: bool = False) -> Dict[str, np.ndarray]:
        """One pass; `each`: check every layer's float results for NaN/inf (if check_finite)."""
        wanted = set(self.net.outputs) | set(keep)
        for layer, blob, value in self._steps(blobs, wanted, each):
            if hook is not None:
                hook(layer, blob, value if codes else self._float(value))
        order = list(self.net.outputs) + sorted(wanted - set(self.net.outputs))
        return {name: self._float(blobs[name]) for name in order}

    def _check_finite(self, layer: Layer, outputs: List[Value]) -> None:
        for blob, value in zip(layer.outputs, outputs):
            if not isinstance(value, Int8Blob) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise KernelError(f"layer '{layer.name}' ({layer.type_str}) produced NaN or infinite "
                                  f"values in blob '{blob}' from finite inputs")

    @property
    def layers(self) -> List[Layer]:
        return self.net.layers
