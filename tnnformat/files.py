"""load() and save(): the file-level entry points, with atomic writes."""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable, List, Optional, Tuple, Union


from .buffer import NUMPY_DTYPE, DataType, RawBuffer
from .errors import TnnFormatError
from .model import read_resources, write_resources
from .net import Net
from .proto import format_proto, parse_proto
from .validate import DEFAULT_BLOB_CAP, validate

PathLike = Union[str, "os.PathLike[str]"]


def _read_bytes(path: PathLike, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TnnFormatError(f"cannot read the {what}: {exc.strerror}", path=str(path)) from None


def load(proto_path: PathLike, model_path: Optional[PathLike] = None, *,
         blob_cap: int = DEFAULT_BLOB_CAP) -> Net:
    """Read a model and check it as a whole (tnnformat.validate; `blob_cap` bytes per blob);
    without `model_path` the Net has no resources (see kernels.with_random_resources)."""
    raw = _read_bytes(proto_path, "proto")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TnnFormatError("the proto is not UTF-8 text", path=str(proto_path), line=line) from None
    net = parse_proto(text, str(proto_path))
    if model_path is not None:
        read_resources(_read_bytes(model_path, "model"), str(model_path), net)
    validate(net, str(proto_path), None if model_path is None else str(model_path), blob_cap=blob_cap)
    return net


def _stored_as(net: Net, storage: Optional[DataType]) -> Net:
    """A shallow copy of `net` whose float and half buffers are stored as `storage`."""
    if storage is None:
        return net
    if storage not in (DataType.FLOAT, DataType.HALF):
        raise ValueError("storage must be DataType.FLOAT or DataType.HALF")

    def convert(buffer: RawBuffer) -> RawBuffer:
        if buffer.data_type not in (DataType.FLOAT, DataType.HALF) or buffer.data_type == storage:
            return buffer
        data = buffer.data.astype(NUMPY_DTYPE[storage])
        return RawBuffer(storage, buffer.dims, data)

    resources = {name: {key: convert(b) for key, b in res.items()}
                 for name, res in net.resources.items()}
    return Net(net.inputs, net.outputs, net.layers, net.input_types, net.blobs, resources,
               {key: convert(b) for key, b in net.constants.items()})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save(net: Net, proto_path: PathLike, model_path: Optional[PathLike] = None, *,
         storage: Optional[DataType] = None) -> None:
    """Write the proto (and the model, if a path is given) in TNN's packer layout.

    Both files are written to temporary files first and renamed at the end, so a failure
    leaves no partial output and existing files are replaced only by complete ones.
    `storage` (FLOAT or HALF) converts float weights; by default each buffer keeps its type.
    """
    text = format_proto(net)
    net = _stored_as(net, storage)
    targets: List[Tuple[PathLike, Callable[[BinaryIO], object]]] = [
        (proto_path, lambda f: f.write(text.encode("utf-8")))]
    if model_path is not None:
        targets.append((model_path, lambda f: write_resources(f, net)))
    temps: List[str] = []
    try:
        for path, fill in targets:
            fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
            temps.append(temp)
            with os.fdopen(fd, "wb") as f:
                fill(f)
            os.chmod(temp, 0o666 & ~_umask())
        for (path, _), temp in zip(targets, temps):
            os.replace(temp, path)
    except OSError as exc:
        raise TnnFormatError(f"cannot write: {exc.strerror}", path=str(exc.filename or "")) from None
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.unlink(temp)
