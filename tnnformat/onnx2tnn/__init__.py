"""onnx2tnn: convert ONNX models to TNN models (needs the `onnx` extra).

    net = tnnformat.onnx2tnn.convert("model.onnx", {"input": (1, 3, 224, 224)})
    tnnformat.save(net, "model.tnnproto", "model.tnnmodel")

Importing `tnnformat` never imports onnx, and neither does importing this package: the names
below load the converter (and onnx) on first use, so the command line can say plainly when
onnx is not installed.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"convert": "converter", "convert_with_summary": "converter", "load_model": "converter",
            "Summary": "converter", "ConversionError": "..importer.errors", "supported_ops": "ops"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    return getattr(importlib.import_module(module if module.startswith(".") else f".{module}", __name__), name)
