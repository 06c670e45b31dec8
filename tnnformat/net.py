"""The in-memory model: what a .tnnproto and a .tnnmodel hold, compared by value.

A `Net` is plain data. Reading fills it, writing serializes it, kernels run it and the
quantizer builds new ones; nothing here knows about files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .blob_scale import BlobScale
from .buffer import DataType, RawBuffer, Resource

BLOB_SCALE_SUFFIX = "_scale_data_"


@dataclass
class Layer:
    """One proto line: `type` is the base type ("Convolution"); `quantized` is the prefix."""

    type: str
    name: str
    inputs: List[str]
    outputs: List[str]
    params: Dict[str, Any] = field(default_factory=dict)
    quantized: bool = False

    @property
    def type_str(self) -> str:
        """The type as a proto line spells it, with TNN's `Quantized` prefix."""
        return ("Quantized" + self.type) if self.quantized else self.type


@dataclass
class Net:
    """A whole TNN model.

    inputs: blob name -> shape (TNN keeps them sorted by name); input_types: blob name ->
    DataType for v2 protos; outputs: sorted output blob names; blobs: every blob name the
    proto lists (TNN keeps the names of blobs removed by its optimizations here, so they
    are kept to write the same file back); resources: layer name or `<blob>_scale_data_`
    -> Resource; constants: the optional constant map of the .tnnmodel.
    """

    inputs: Dict[str, Tuple[int, ...]]
    outputs: List[str]
    layers: List[Layer]
    input_types: Dict[str, DataType] = field(default_factory=dict)
    blobs: List[str] = field(default_factory=list)
    resources: Dict[str, Resource] = field(default_factory=dict)
    constants: Dict[str, RawBuffer] = field(default_factory=dict)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named '{name}'")

    def all_blobs(self) -> List[str]:
        """Every blob TNN would list: the ones recorded plus those the layers and inputs name."""
        names = set(self.blobs) | set(self.inputs)
        for layer in self.layers:
            names.update(layer.inputs)
            names.update(layer.outputs)
        return sorted(names)

    def blob_scale(self, blob: str) -> Optional[Resource]:
        """The BlobScale resource of `blob`, if the model has one."""
        return self.resources.get(blob + BLOB_SCALE_SUFFIX)

    def scale_of(self, blob: str) -> Optional[BlobScale]:
        """`blob`'s scale and zero point, if the model has a BlobScale resource with a scale."""
        resource = self.blob_scale(blob)
        return BlobScale.from_resource(resource) if resource is not None and "scale" in resource else None

    def set_scale(self, blob: str, scale: BlobScale) -> None:
        """Store `scale` as `blob`'s BlobScale resource, in TNN's layout."""
        self.resources[blob + BLOB_SCALE_SUFFIX] = scale.to_resource()
