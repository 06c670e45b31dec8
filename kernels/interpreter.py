"""The graph runner: layers in proto order, blobs freed after their last reader."""
from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional

import numpy as np

from tnnformat import Layer, Net

from .errors import KernelError
from .registry import kernel_for

Hook = Callable[[Optional[Layer], str, np.ndarray], None]


class Interpreter:
    """Runs a TNN Net on batched float32 NCHW inputs, with TNN's semantics.

    `forward(inputs, hook=...)` calls `hook(layer, blob, value)` for every network input
    (layer None) and every blob a layer produces, in execution order, as TNN's forward
    callback does. Blobs are released after their last reader unless listed in `keep`.
    """

    def __init__(self, net: Net):
        self.net = net
        quantized = [layer for layer in net.layers if layer.quantized]
        if quantized:
            raise KernelError(f"layer '{quantized[0].name}' is {quantized[0].type_str}: "
                              "int8 execution is not supported yet")
        self.kernels = [kernel_for(layer) for layer in net.layers]
        self.states = [kernel.prepare(layer, net.resources.get(layer.name, {}))
                       for kernel, layer in zip(self.kernels, net.layers)]
        self.last_use: Dict[str, int] = {}
        for index, layer in enumerate(net.layers):
            for blob in layer.inputs:
                self.last_use[blob] = index

    def _check_inputs(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        blobs = {}
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

    def forward(self, inputs: Dict[str, np.ndarray], hook: Optional[Hook] = None,
                keep: Iterable[str] = ()) -> Dict[str, np.ndarray]:
        """The model outputs (and any blobs named in `keep`) for `inputs`."""
        blobs = self._check_inputs(inputs)
        wanted = set(self.net.outputs) | set(keep)
        if hook is not None:
            for name, value in blobs.items():
                hook(None, name, value)
        for index, (layer, kernel, state) in enumerate(zip(self.net.layers, self.kernels, self.states)):
            try:
                args = [blobs[b] for b in layer.inputs]
            except KeyError as exc:
                raise KernelError(f"layer '{layer.name}' reads blob '{exc.args[0]}', which no earlier "
                                  "layer or input produces") from None
            try:
                outputs = kernel.run(layer, state, args)
            except KernelError:
                raise
            except (ValueError, IndexError) as exc:
                raise KernelError(f"layer '{layer.name}' ({layer.type}) failed on input shapes "
                                  f"{[list(a.shape) for a in args]}: {exc}") from None
            for blob, value in zip(layer.outputs, outputs):
                blobs[blob] = value
                if hook is not None:
                    hook(layer, blob, value)
            for blob in set(layer.inputs) | set(layer.outputs):
                if self.last_use.get(blob, -1) <= index and blob not in wanted:
                    blobs.pop(blob, None)
        missing = sorted(b for b in wanted if b not in blobs)
        if missing:
            raise KernelError(f"blob '{missing[0]}' is never produced")
        return {name: blobs[name] for name in list(self.net.outputs) + sorted(wanted - set(self.net.outputs))}

    @property
    def layers(self) -> List[Layer]:
        return self.net.layers
