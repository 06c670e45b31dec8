"""Shape inference: every blob's shape from the inputs' shapes and the layers' params."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

from tnnformat import Net

from .errors import KernelError
from .registry import KERNELS, kernel_for

Shape = Tuple[int, ...]


def infer_shapes(net: Net, input_shapes: Optional[Dict[str, Shape]] = None, *,
                 blob_cap: Optional[int] = None, skip_unknown: bool = False) -> Dict[str, Shape]:
    """Shapes of all blobs; `input_shapes` overrides the proto's (e.g. another batch size).

    `blob_cap` (bytes of float32) makes a larger blob an error naming its layer; with
    `skip_unknown`, layers without a kernel are passed over and so is everything that reads
    their outputs (those blobs get no shape)."""
    shapes: Dict[str, Shape] = {name: tuple(shape) for name, shape in net.inputs.items()}
    shapes.update({name: tuple(shape) for name, shape in (input_shapes or {}).items()})
    unknown = set()
    for layer in net.layers:
        if skip_unknown and (layer.type not in KERNELS or unknown.intersection(layer.inputs)):
            unknown.update(layer.outputs)
            continue
        missing = [b for b in layer.inputs if b not in shapes]
        if missing:
            raise KernelError(f"layer '{layer.name}' reads blob '{missing[0]}', which no earlier "
                              "layer or input produces")
        in_shapes = [shapes[b] for b in layer.inputs]
        try:
            out_shapes = kernel_for(layer).shapes(layer, in_shapes, net.resources.get(layer.name, {}))
        except KernelError:
            raise
        except (ValueError, IndexError, ZeroDivisionError, KeyError, TypeError, OverflowError) as exc:
            raise KernelError(f"layer '{layer.name}' ({layer.type}) cannot take input shapes "
                              f"{[list(s) for s in in_shapes]}: {exc}") from None
        if len(out_shapes) != len(layer.outputs):
            raise KernelError(f"layer '{layer.name}' ({layer.type}) makes {len(out_shapes)} outputs, "
                              f"the proto names {len(layer.outputs)}")
        for blob, shape in zip(layer.outputs, out_shapes):
            if any(d <= 0 for d in shape):
                raise KernelError(f"layer '{layer.name}' ({layer.type}) gives an empty output "
                                  f"{list(shape)} from inputs {[list(s) for s in in_shapes]}")
            shapes[blob] = tuple(int(d) for d in shape)
            if blob_cap is not None and 4 * math.prod(shapes[blob]) > blob_cap:
                raise KernelError(f"layer '{layer.name}' ({layer.type}) gives blob '{blob}' of shape "
                                  f"{list(shape)}, {4 * math.prod(shapes[blob]) / 2**30:.3g} GiB as float32, "
                                  f"over the cap of {blob_cap / 2**30:.3g} GiB")
    return shapes


def shapes_at_batch(net: Net, batch: int) -> Dict[str, Shape]:
    """`infer_shapes` with every input at batch `batch` (KernelError if they cannot be inferred)."""
    return infer_shapes(net, {k: (batch,) + tuple(v[1:]) for k, v in net.inputs.items()})


def batch_mismatch(net: Net) -> Optional[str]:
    """None when every blob's first dimension is the batch (its shapes at batch 1 and 2
    differ exactly there); else what breaks it, naming the layer. Models converted with a
    literal batch in a Reshape (or TNN files from elsewhere) can only run one sample at a time."""
    try:
        one = shapes_at_batch(net, 1)
    except KernelError as exc:
        return str(exc)
    try:
        two = shapes_at_batch(net, 2)
    except KernelError as exc:
        return f"at batch 2, {exc}"
    for layer in net.layers:
        for blob in layer.outputs:
            if one[blob][:1] != (1,) or two[blob] != (2,) + one[blob][1:]:
                return (f"layer '{layer.name}' ({layer.type}) gives {list(one[blob])} at batch 1 and "
                        f"{list(two[blob])} at batch 2")
    return None
