"""Shared test fixtures: where ../shared is, and the rule for when it is missing."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _missing(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


def require(module: str):
    """Import an optional test dependency; under CI=true its absence fails instead of skipping."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _missing(f"{module} is not installed (pip install '.[test]')")


def shared_path(*parts: str) -> Path:
    """A path under ../shared; missing ../shared fails under CI=true and skips elsewhere."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        _missing(f"{path} is missing (tests that use ../shared need it beside the checkout)")
    return path


@pytest.fixture
def shared():
    """The ../shared folder (see shared_path)."""
    return shared_path()
