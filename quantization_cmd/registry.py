"""Methods known by name: one registry per kind (blob methods, weight methods), filled by one
`register` line per method module, looked up by the config with an error that names the key."""
from __future__ import annotations

from typing import Dict, Generic, Iterator, TypeVar

from .config import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}

    def register(self, item: T) -> T:
        name = item.name  # type: ignore[attr-defined]
        if name in self._items:
            raise ValueError(f"two {self.kind}s named {name}")
        self._items[name] = item
        return item

    def get(self, name: str, where: str) -> T:
        if name not in self._items:
            raise ConfigError(f"{where}: unknown {self.kind} {name!r} (known: {', '.join(self._items)})")
        return self._items[name]

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
