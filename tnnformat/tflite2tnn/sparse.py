"""Sparse constant tensors (TFLite's SparsityParameters) made dense, for DENSIFY.

The stored dims are the tensor's dims, then one per block dim (`block_map` names the dim a
block splits), visited in `traversal_order`; each level is DENSE (every index up to its
dense_size) or SPARSE_CSR (indices[segments[p]:segments[p + 1]] of the parent position p).
The values are the leaves in visiting order. Every index and count is checked.
"""
from __future__ import annotations

from typing import List

import numpy as np

from . import schema
from .flatbuf import Table

#: SparseIndexVector union: type -> element dtype of the table's `values` (slot 0).
INDEX_VECTORS = {1: "i4", 2: "u2", 3: "u1"}
#: The most elements a densified weight may have (a corrupt shape must not allocate more).
MAX_DENSE = 1 << 26


def _index_vector(model: schema.Model, table: Table, type_slot: int, value_slot: int) -> np.ndarray:
    kind = INDEX_VECTORS.get(int(table.scalar(type_slot, "B", 0)))
    vector = table.table(value_slot)
    values = vector.array(0, kind) if vector is not None and kind else None
    if values is None:
        raise model.file.corrupt("a sparse dimension has no segments or indices")
    return values.astype(np.int64)


def densify(model: schema.Model, tensor: schema.Tensor, values: np.ndarray) -> np.ndarray:
    """The dense array of sparse `tensor`, whose stored values are `values` (1-D)."""
    table = tensor.sparsity
    assert table is not None
    rank = len(tensor.shape)
    order, block_map = table.ints(0), table.ints(1)
    levels = table.tables(2)
    total = rank + len(block_map)
    if sorted(order) != list(range(total)) or len(levels) != total or any(
            not 0 <= d < rank for d in block_map):
        raise model.file.corrupt(f"tensor {tensor.index} has inconsistent sparsity parameters")
    sizes: List[int] = [0] * total  # the extent of each stored dim
    positions = np.zeros(1, np.int64)  # parent positions of the current level
    coords = np.zeros((1, total), np.int64)
    for level, table_level in zip(order, levels):
        if int(table_level.scalar(0, "b", 0)) == 0:  # DENSE
            size = int(table_level.scalar(1, "i", 0))
            if not 0 < size <= values.size:
                raise model.file.corrupt(f"tensor {tensor.index} has a dense size of {size}")
            if len(positions) * size > values.size:
                raise model.file.corrupt(f"tensor {tensor.index} has more sparse positions than values")
            child = np.arange(size, dtype=np.int64)
            coords = np.repeat(coords, size, axis=0)
            coords[:, level] = np.tile(child, len(positions))
            positions = (np.repeat(positions, size) * size + np.tile(child, len(positions)))
        else:  # SPARSE_CSR
            segments = _index_vector(model, table_level, 2, 3)
            indices = _index_vector(model, table_level, 4, 5)
            if (positions.size and (positions.max() + 1 >= segments.size)) or np.any(np.diff(segments) < 0) \
                    or segments[0] < 0 or segments[-1] > indices.size:
                raise model.file.corrupt(f"tensor {tensor.index} has sparse segments out of range")
            counts = segments[positions + 1] - segments[positions]
            children = np.concatenate([np.arange(segments[p], segments[p + 1]) for p in positions]) \
                if positions.size else np.zeros(0, np.int64)
            coords = np.repeat(coords, counts, axis=0)
            coords[:, level] = indices[children]
            positions = children
            size = int(indices.max()) + 1 if indices.size else 1
        sizes[level] = size
        if coords.shape[0] > values.size:
            raise model.file.corrupt(f"tensor {tensor.index} has more sparse positions than values")
    if coords.shape[0] != values.size:
        raise model.file.corrupt(f"tensor {tensor.index} has {values.size} sparse values for "
                                 f"{coords.shape[0]} positions")
    dense_coords = coords[:, :rank].copy()
    for j, dim in enumerate(block_map):
        dense_coords[:, dim] = dense_coords[:, dim] * sizes[rank + j] + coords[:, rank + j]
    shape = np.array(tensor.shape, np.int64)
    if np.any(shape <= 0) or float(np.prod(shape.astype(np.float64))) > MAX_DENSE:
        raise model.file.corrupt(f"tensor {tensor.index} has a sparse shape of {list(tensor.shape)}")
    if np.any(dense_coords >= shape) or np.any(dense_coords < 0):
        raise model.file.corrupt(f"tensor {tensor.index} has a sparse index outside its shape")
    dense = np.zeros(tensor.shape, values.dtype)
    dense[tuple(dense_coords.T)] = values
    return dense
