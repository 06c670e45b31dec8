"""quantization_cmd: calibrate a float TNN model and write an int8 TNN model.

The library under the command: `quantize(net, samples, config) -> QuantResult` (see api.py),
configs in config.py, the pipeline of passes in pipeline.py.
"""
from .api import QuantResult, default_passes, quantize
from .config import BlobConfig, ConfigError, LayerConfig, Override, QuantConfig, from_tnn_flags

__all__ = ["BlobConfig", "ConfigError", "LayerConfig", "Override", "QuantConfig", "QuantResult",
           "default_passes", "from_tnn_flags", "quantize"]
