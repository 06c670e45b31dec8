"""Kinds of positional layer params in a .tnnproto layer line.

A layer type declares its params as a sequence of these fields (see layer_types.py); the same
declaration parses a proto line and writes it back, so reading and writing cannot drift apart.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, List, Sequence, Tuple

import numpy as np


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a param that every file must carry.
REQUIRED: Any = _Required()


class ParamError(ValueError):
    """A param token that does not fit its declaration (the reader adds file and line)."""


def parse_int(token: str, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ParamError(f"{what}: expected an integer, got '{token}'") from None


def parse_float(token: str, what: str) -> float:
    """A float param as TNN holds it: a C float, kept as the Python float of that value."""
    try:
        value = float(token)
    except ValueError:
        raise ParamError(f"{what}: expected a number, got '{token}'") from None
    with np.errstate(over="ignore"):  # beyond float32: inf, which validate() refuses
        return float(np.float32(value))


def format_float(value: float) -> str:
    """TNN's packer prints floats with C++ stream defaults (%g); keep that unless it loses bits."""
    text = "%g" % value
    if np.float32(float(text)) == np.float32(value):
        return text
    return "%.9g" % value


class Field:
    """One named param. `default` is used when a file's line ends before it; REQUIRED
    makes that an error and None marks an optional trailing value the writer omits."""

    def __init__(self, name: str, default: Any = REQUIRED):
        self.name, self.default = name, default

    def read(self, tokens: Sequence[str], pos: int) -> Tuple[Any, int]:
        if pos >= len(tokens):
            if self.default is REQUIRED:
                raise ParamError(f"missing param '{self.name}'")
            return copy.copy(self.default), pos
        return self.read_present(tokens, pos)

    def read_present(self, tokens: Sequence[str], pos: int) -> Tuple[Any, int]:
        raise NotImplementedError

    def write(self, value: Any) -> List[str]:
        raise NotImplementedError

    def check(self, value: Any) -> None:
        """Raise ParamError if `value` cannot be written as this field."""
        self.write(value)


class Int(Field):
    def read_present(self, tokens, pos):
        return parse_int(tokens[pos], self.name), pos + 1

    def write(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ParamError(f"param '{self.name}' must be an integer, not {value!r}")
        return [str(int(value))]


class Float(Field):
    def read_present(self, tokens, pos):
        return parse_float(tokens[pos], self.name), pos + 1

    def write(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ParamError(f"param '{self.name}' must be a number, not {value!r}")
        return [format_float(float(value))]


class _List(Field):
    """A list of numbers; subclasses say how its length is known."""

    def __init__(self, name: str, item: Callable[[str, str], Any], default: Any = REQUIRED):
        super().__init__(name, default)
        self.item = item
        self.item_field = Int(name) if item is parse_int else Float(name)

    def items(self, tokens: Sequence[str], pos: int, count: int) -> List[Any]:
        if count < 0:
            raise ParamError(f"param '{self.name}': negative count {count}")
        if pos + count > len(tokens):
            raise ParamError(f"param '{self.name}': {count} values announced, "
                             f"{len(tokens) - pos} present")
        return [self.item(t, self.name) for t in tokens[pos:pos + count]]

    def write_items(self, value: Any) -> List[str]:
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"param '{self.name}' must be a list, not {value!r}")
        return [t for v in value for t in self.item_field.write(v)]


class CountedList(_List):
    """A count followed by that many values (Reshape's shape, Permute's orders, ...)."""

    def read_present(self, tokens, pos):
        count = parse_int(tokens[pos], self.name + " count")
        return self.items(tokens, pos + 1, count), pos + 1 + count

    def write(self, value):
        items = self.write_items(value)
        return [str(len(items))] + items


class RestList(_List):
    """All remaining values of the line (reduce axes, unknown layers' tokens)."""

    def __init__(self, name: str, item: Callable[[str, str], Any]):
        super().__init__(name, item, default=[])

    def read_present(self, tokens, pos):
        return self.items(tokens, pos, len(tokens) - pos), len(tokens)

    def write(self, value):
        return self.write_items(value)


def IntList(name: str, default: Any = REQUIRED) -> CountedList:
    return CountedList(name, parse_int, default)


def FloatList(name: str, default: Any = REQUIRED) -> CountedList:
    return CountedList(name, parse_float, default)


def IntRest(name: str) -> RestList:
    return RestList(name, parse_int)


class Tokens(RestList):
    """Raw tokens kept verbatim: the params of a layer type we do not know."""

    def __init__(self, name: str = "tokens"):
        super().__init__(name, lambda token, what: token)

    def write_items(self, value):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ParamError(f"param '{self.name}' must be a list of strings")
        return list(value)


def read_params(fields: Sequence[Field], tokens: Sequence[str]) -> dict:
    """Parse a layer's param tokens; extra trailing tokens are an error."""
    params, pos = {}, 0
    for field in fields:
        params[field.name], pos = field.read(tokens, pos)
    if pos < len(tokens):
        raise ParamError(f"{len(tokens) - pos} unexpected extra param(s): {' '.join(tokens[pos:])}")
    return params


def write_params(fields: Sequence[Field], params: dict) -> List[str]:
    """The param tokens of a layer line, in declaration order; None values are omitted."""
    unknown = set(params) - {f.name for f in fields}
    if unknown:
        raise ParamError(f"unknown param(s) {sorted(unknown)}")
    tokens: List[str] = []
    for field in fields:
        if field.name not in params:
            if field.default is REQUIRED:
                raise ParamError(f"missing param '{field.name}'")
            value = copy.copy(field.default)
        else:
            value = params[field.name]
        if value is not None:
            tokens.extend(field.write(value))
    return tokens


def default_params(fields: Sequence[Field], **given: Any) -> dict:
    """Params for a new layer: the given values, every other field at its default."""
    params = {}
    for field in fields:
        if field.name in given:
            params[field.name] = given.pop(field.name)
        elif field.default is REQUIRED:
            raise ParamError(f"param '{field.name}' has no default and was not given")
        else:
            params[field.name] = copy.copy(field.default)
    if given:
        raise ParamError(f"unknown param(s) {sorted(given)}")
    return params
