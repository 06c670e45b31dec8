"""Kernels registered by TNN layer type name.

A kernel knows two things about its layer type: the output shapes from the input shapes and
params (shape inference, no data needed), and the outputs from the inputs. `prepare` turns a
layer's resource into whatever the computation wants (a weight matrix, a broadcastable
constant) once per interpreter, not once per forward. A kernel for a layer type TNN computes in
integers when quantized also has an int8 path, `prepare_int8` and `run_int8`; other quantized
layers run the float kernel between a dequantize and a quantize, as TNN does.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple, Type

import numpy as np

from tnnformat import BlobScale, Layer, Resource

from .errors import KernelError
from .int8 import Int8Blob

Shape = Tuple[int, ...]


class Kernel:
    def shapes(self, layer: Layer, inputs: Sequence[Shape], resource: Resource) -> List[Shape]:
        """Output shapes; by default one output shaped like the first input."""
        return [tuple(inputs[0])]

    def prepare(self, layer: Layer, resource: Resource) -> Any:
        """Per-layer data computed once (weights reshaped, constants converted)."""
        return resource

    def run(self, layer: Layer, state: Any, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        raise NotImplementedError

    def prepare_int8(self, layer: Layer, resource: Resource, inputs: List[BlobScale],
                     outputs: List[BlobScale]) -> Any:
        """Per-layer data for `run_int8`, given the scales of the layer's input and output blobs."""
        return None

    def run_int8(self, layer: Layer, state: Any, inputs: Sequence[Int8Blob],
                 outputs: List[BlobScale]) -> List[np.ndarray]:
        """The int8 values of the outputs (to be read with the `outputs` scales)."""
        raise NotImplementedError

    @property
    def has_int8(self) -> bool:
        """The kernel computes its quantized layer in integers (it defines `run_int8`)."""
        return type(self).run_int8 is not Kernel.run_int8

    #: The layer computes each sample of a batch from that sample alone (so a batch can be
    #: split across threads); kernels whose params decide it override `samples_apart`.
    per_sample = False

    def samples_apart(self, layer: Layer, inputs: Sequence[Shape]) -> bool:
        return self.per_sample


KERNELS: Dict[str, Kernel] = {}


def register(*type_names: str) -> Callable[[Type[Kernel]], Type[Kernel]]:
    def add(cls: Type[Kernel]) -> Type[Kernel]:
        for name in type_names:
            if name in KERNELS:
                raise ValueError(f"two kernels for layer type {name}")
            KERNELS[name] = cls()
        return cls
    return add


def kernel_for(layer: Layer) -> Kernel:
    kernel = KERNELS.get(layer.type)
    if kernel is None:
        raise KernelError(f"layer '{layer.name}' has type {layer.type}, which has no kernel; "
                          f"supported types: {', '.join(sorted(KERNELS))}")
    return kernel


def float_buffer(resource: Resource, key: str, layer: Layer) -> np.ndarray:
    """A resource buffer as float32 (half and bfp16 widened); a clear error if it is missing."""
    if key not in resource:
        raise KernelError(f"layer '{layer.name}' ({layer.type}) has no '{key}' in the model's resources")
    return resource[key].numpy(np.float32)
