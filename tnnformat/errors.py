"""The one error type of tnnformat: every problem with a file's content becomes one of these."""
from __future__ import annotations

from typing import Optional


class TnnFormatError(ValueError):
    """A TNN file that cannot be read or a Net that cannot be written.

    The message always says where: the file, then the line or byte offset, then the layer,
    so a user can find the fault without a debugger.
    """

    def __init__(self, message: str, *, path: Optional[str] = None, line: Optional[int] = None,
                 offset: Optional[int] = None, layer: Optional[str] = None):
        self.path, self.line, self.offset, self.layer = path, line, offset, layer
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if offset is not None:
            where.append(f"byte {offset}")
        if layer is not None:
            where.append(f"layer '{layer}'")
        self.reason = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
