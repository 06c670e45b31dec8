"""tflite2tnn: convert TFLite models to TNN models (no extra packages needed).

    net = tnnformat.tflite2tnn.convert("model.tflite")
    tnnformat.save(net, "model.tnnproto", "model.tnnmodel")

The file is read with bounds-checked FlatBuffers table readers (flatbuf.py, schema.py);
rank-4 tensors are NHWC in TFLite and NCHW in the TNN model.
"""
from __future__ import annotations

from ..importer.errors import ConversionError
from .converter import Summary, convert, convert_with_summary
from .ops import supported_ops

__all__ = ["ConversionError", "Summary", "convert", "convert_with_summary", "supported_ops"]
