"""load() and save(): the file-level entry points, with atomic writes."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from typing import BinaryIO, Callable, List, Optional, Sequence, Tuple, Union


from .buffer import NUMPY_DTYPE, DataType, RawBuffer
from .errors import TnnFormatError
from .model import read_resources, write_resources
from .net import Net
from .proto import format_proto, parse_proto
from .validate import DEFAULT_BLOB_CAP, validate

PathLike = Union[str, "os.PathLike[str]"]


def read_regular(path: PathLike) -> bytes:
    """A regular file's bytes; a FIFO or a device (which could block or never end) is an
    OSError, as a missing file is."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with open(path, "rb") as f:
        return f.read()


def read_regular_text(path: PathLike) -> str:
    """read_regular as UTF-8 text (UnicodeDecodeError if it is not)."""
    return read_regular(path).decode("utf-8")


def _read_bytes(path: PathLike, what: str) -> bytes:
    try:
        return read_regular(path)
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


Fill = Callable[[BinaryIO], object]


def _libc_linkat() -> Optional[Callable[..., int]]:
    """libc's linkat, to give an O_TMPFILE file a name (os.link cannot follow /proc/self/fd)."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        import ctypes

        return getattr(ctypes.CDLL(None, use_errno=True), "linkat", None)
    except (OSError, ImportError):
        return None


_LINKAT = _libc_linkat()
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400


def _name_unnamed(fd: int, path: str) -> None:
    import ctypes

    if _LINKAT(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, os.fsencode(path), AT_SYMLINK_FOLLOW) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)


def _unnamed_file(folder: str) -> Tuple[int, Optional[str]]:
    """A file open for writing in `folder` with no name yet (Linux O_TMPFILE: a kill leaves
    nothing behind); elsewhere a hidden temporary name, removed on failure."""
    if _LINKAT is not None:
        try:
            return os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666 & ~_umask()), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.chmod(temp, 0o666 & ~_umask())
    return fd, temp


def write_atomically(targets: Sequence[Tuple[PathLike, Fill]]) -> None:
    """Write files so that none is ever seen half written, and several appear as a set.

    Each file is filled completely while it has no name (Linux's O_TMPFILE; elsewhere a
    hidden temporary name), then the files are put in place in order: an unnamed file is
    linked under its name once the old file there is removed, a named one renamed over it.
    With several files the last one is the commit record: an existing file under its name is
    removed first, and it appears only after the others are in place, so a reader that finds
    it finds its partners from the same write. A kill at any moment leaves no temporary file
    (on Linux) and never a mismatched set; failures raise OSError naming the target."""
    opened: List[Tuple[int, Optional[str]]] = []
    current = None
    try:
        for path, fill in targets:
            current = path
            if os.path.lexists(path) and not os.path.isfile(path):
                raise IsADirectoryError(errno.EISDIR, "not a regular file, it cannot be replaced", str(path))
            opened.append(_unnamed_file(os.path.dirname(os.path.abspath(path))))
            with os.fdopen(os.dup(opened[-1][0]), "wb") as f:
                fill(f)
        if len(targets) > 1 and os.path.lexists(targets[-1][0]):
            current = targets[-1][0]
            os.unlink(targets[-1][0])
        for (path, _), (fd, temp) in zip(targets, opened):
            current = path
            if temp is None:
                if os.path.lexists(path):
                    os.unlink(path)
                _name_unnamed(fd, str(path))
            else:
                os.replace(temp, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(current)) from None
    finally:
        for fd, temp in opened:
            os.close(fd)
            if temp is not None and os.path.lexists(temp):
                os.unlink(temp)


def save(net: Net, proto_path: PathLike, model_path: Optional[PathLike] = None, *,
         storage: Optional[DataType] = None) -> None:
    """Write the proto (and the model, if a path is given) in TNN's packer layout.

    Written with write_atomically, the proto last: no partial file is ever visible, a failure
    leaves nothing, and a proto on disk always has its own model beside it.
    `storage` (FLOAT or HALF) converts float weights; by default each buffer keeps its type.
    """
    text = format_proto(net)
    net = _stored_as(net, storage)
    targets: List[Tuple[PathLike, Fill]] = []
    if model_path is not None:
        targets.append((model_path, lambda f: write_resources(f, net)))
    targets.append((proto_path, lambda f: f.write(text.encode("utf-8"))))
    try:
        write_atomically(targets)
    except OSError as exc:
        raise TnnFormatError(f"cannot write: {exc.strerror}", path=exc.filename) from None
