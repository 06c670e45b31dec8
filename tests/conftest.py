"""Shared test fixtures: where ../shared is, and the rule for when it is missing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared; missing ../shared fails under CI=true and skips elsewhere."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing (tests that use ../shared need it beside the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def shared():
    """The ../shared folder (see shared_path)."""
    return shared_path()
