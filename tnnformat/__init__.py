"""Read and write TNN model files (.tnnproto text and .tnnmodel binary).

    net = tnnformat.load("m.tnnproto", "m.tnnmodel")
    tnnformat.save(net, "out.tnnproto", "out.tnnmodel")

What is written is laid out exactly as TNN's own packer writes it, so TNN loads it.
"""
from __future__ import annotations

from .blob_scale import BlobScale
from .buffer import DataType, RawBuffer, Resource
from .errors import TnnFormatError
from .files import load, save, write_atomically
from .layer_types import known_types
from .net import BLOB_SCALE_SUFFIX, Layer, Net
from .validate import DEFAULT_BLOB_CAP, validate

__all__ = [
    "BLOB_SCALE_SUFFIX", "DEFAULT_BLOB_CAP", "BlobScale", "DataType", "Layer", "Net", "RawBuffer", "Resource",
    "TnnFormatError", "known_types", "load", "save", "validate", "write_atomically",
]
