"""Shared fixtures: every async test runs on asyncio and on trio."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Recorded sessions of the JavaScript implementation live beside the project checkout
# unless ROUPN_VECTORS points elsewhere.
VECTORS = Path(
    os.environ.get("ROUPN_VECTORS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def load_vector(name: str) -> dict[str, Any]:
    """Load a recorded session of the JavaScript implementation."""
    path = VECTORS / name
    if not path.exists():
        message = f"test vectors not found at {path}; set ROUPN_VECTORS to their folder"
        if os.environ.get("ROUPN_REQUIRE_VECTORS"):
            pytest.fail(message)
        pytest.skip(message)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
