"""Read and write TNN model files (.tnnproto text and .tnnmodel binary)."""
