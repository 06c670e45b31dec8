"""Numpy kernels for TNN layers and the graph runner."""
