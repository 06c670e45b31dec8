"""What the core tells its caller while it works: progress and warnings, as plain events.

The core never prints; the CLI renders events as progress bars and warning lines, a library
user may log them or ignore them (the default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union


@dataclass(frozen=True)
class Progress:
    """`done` of `total` steps of `task` are finished (`total` None when unknown); the first
    event of a task starts it, `TaskDone` ends it."""

    task: str
    done: int
    total: Optional[int]


@dataclass(frozen=True)
class TaskDone:
    task: str


@dataclass(frozen=True)
class Notice:
    """A warning for the user: the run goes on, but something deserves a look."""

    message: str


Event = Union[Progress, TaskDone, Notice]
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default listener."""

