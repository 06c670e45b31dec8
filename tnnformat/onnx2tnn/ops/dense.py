"""Gemm and MatMul.

A product of a 2-D blob with a constant 2-D matrix is an InnerProduct (weight stored
(num_output, K), bias always present, as TNN's converter writes Gemm); TNN's CPU InnerProduct
only multiplies over axis 1, so other products stay MatMul layers, with a constant operand in
the resource as TNN's converter does.
"""
from __future__ import annotations

import numpy as np

from ...importer.builders import emit_binary, emit_inner_product
from ...importer.context import Context, buffer
from ...importer.graph import Node
from . import converts


@converts("Gemm", attrs=("alpha", "beta", "transA", "transB", "broadcast"))
def gemm(ctx: Context, node: Node) -> None:
    b = ctx.need_const(node.inputs[1], "B")
    source = node.inputs[0]
    if node.attr("transA", 0):  # A is (K, M): a Permute makes it (M, K)
        k, m = ctx.shape(source)
        source = ctx.new_value(f"{source}_transposed", (m, k))
        ctx.emit("Permute", [node.inputs[0]], [source], {"orders": [1, 0]}, name=f"{node.label}_transA")
    weight = b if node.attr("transB", 0) else b.T
    alpha = node.attr("alpha", 1.0)
    if alpha != 1.0:
        weight = weight * np.float32(alpha)
    rows, num_output = ctx.shape(node.outputs[0])
    bias = np.zeros(num_output, np.float32)
    c_name = node.inputs[2] if len(node.inputs) > 2 else ""
    c = ctx.const(c_name)
    beta = np.float32(node.attr("beta", 1.0))
    if c is not None and c.size in (1, num_output) and (c.ndim < 2 or c.shape[0] == 1):  # a row
        bias = np.broadcast_to(c.astype(np.float32).reshape(-1) * beta, (num_output,))
        c_name = ""
    if not c_name:
        emit_inner_product(ctx, source, node.outputs[0], weight, bias)
        return
    if beta != 1:
        raise ctx.fail("beta != 1 with a C that is not a bias vector is not supported")
    product = ctx.new_value(f"{node.outputs[0]}_product", (rows, num_output))
    emit_inner_product(ctx, source, product, weight, bias)
    emit_binary(ctx, "Add", product, c_name, node.outputs[0])


@converts("MatMul")
def matmul(ctx: Context, node: Node) -> None:
    a, b = node.inputs
    if ctx.rank(a) < 2 or ctx.rank(b) < 2:
        raise ctx.fail("1-D operands are not supported")
    constant_a, constant_b = ctx.const(a), ctx.const(b)
    if constant_b is not None and constant_b.ndim == 2 and ctx.rank(a) == 2:
        bias = np.zeros(constant_b.shape[1], np.float32)
        emit_inner_product(ctx, a, node.outputs[0], constant_b.T, bias)
    elif constant_b is not None:
        ctx.emit("MatMul", [a], node.outputs, {"weight_position": 1}, {"weight": buffer(constant_b)})
    elif constant_a is not None:
        ctx.emit("MatMul", [b], node.outputs, {"weight_position": 0}, {"weight": buffer(constant_a)})
    else:
        ctx.emit("MatMul", [a, b], node.outputs, {"weight_position": -1})
