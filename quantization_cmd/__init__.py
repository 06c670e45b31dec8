"""quantization_cmd: calibrate a float TNN model and write an int8 TNN model."""
