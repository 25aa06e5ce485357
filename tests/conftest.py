"""Shared fixtures: every async test runs on asyncio and on trio."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
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


_IDENTITIES: list[Any] = []
IDENTITY_POOL_SIZE = 5


@pytest.fixture
def quick_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand clients pre-made webcrypto identities instead of new RSA-4096 keys.

    Making two RSA-4096 key pairs takes about a second per client, so tests share a
    small pool, made once per run. Clients in one test still get distinct keys.
    """
    from roupn_webcrypto import WebcryptoSuite

    if not _IDENTITIES:
        suite = WebcryptoSuite()
        _IDENTITIES.extend(suite.generate_identity() for _ in range(IDENTITY_POOL_SIZE))
    handed_out = iter(_IDENTITIES)

    def next_identity(self: Any) -> Any:
        try:
            return next(handed_out)
        except StopIteration:
            raise AssertionError(
                f"a test made more than {IDENTITY_POOL_SIZE} clients: "
                "raise IDENTITY_POOL_SIZE"
            ) from None

    monkeypatch.setattr(WebcryptoSuite, "generate_identity", next_identity)


def redis_server_path() -> str:
    """Return the path of redis-server; skip, or fail with ROUPN_REQUIRE_REDIS."""
    server = shutil.which("redis-server")
    if server is None:
        message = (
            "redis-server not found: install it (apt-get install redis-server) or "
            "set ROUPN_REDIS_URL to a running server's URL"
        )
        if os.environ.get("ROUPN_REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    return server


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:``port`` without persistence; wait for it."""
    arguments = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    arguments += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [redis_server_path(), *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait(timeout=10)
                message = f"redis-server did not start on port {port}"
                raise RuntimeError(message) from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Return the URL of a Redis server for the backplane tests.

    ROUPN_REDIS_URL names a running server; otherwise the tests start their own
    redis-server on a free port of 127.0.0.1, in a temporary folder. Without
    either, the tests skip, or fail when ROUPN_REQUIRE_REDIS is set.
    """
    url = os.environ.get("ROUPN_REDIS_URL")
    if url:
        yield url
        return
    port = free_port()
    process = start_redis_server(tmp_path_factory.mktemp("redis"), port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
