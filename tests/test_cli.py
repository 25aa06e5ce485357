"""The roupn command: demo and serve, run as a user runs them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import anyio
import pytest

from roupn import Settings
from roupn.cli import main


@pytest.mark.usefixtures("quick_keys")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_runs_whole_flow(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--async-backend", backend]) == 0
    out = capsys.readouterr().out
    assert "accepted=False" in out
    assert "accepted=True" in out
    assert "Bob decrypted a room message: 'Welcome, Bob!'" in out
    assert "Alice decrypted a direct message" in out
    assert '"done": true' in out
    assert "message texts readable in them: none" in out
    assert out.rstrip().endswith("done")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_accepts_raw_protocol() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "roupn", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        line = ""
        while "relay listening" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert "relay listening on http://127.0.0.1:" in line
        anyio.run(_create_and_join, f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _create_and_join(url: str) -> None:
    from base64 import b64decode

    transport = Settings().load_transport()
    response = await transport.http_get(url + "/create-room")
    assert response.status == 200
    ticket = json.loads(response.body)
    join = (
        f"{url}/join-room?code={ticket['roomCode']}&creator={ticket['creatorSecret']}"
    )
    async with transport.connect(join) as connection:
        with anyio.fail_after(10):
            frame = await connection.receive()
    assert isinstance(frame, str)
    key, _, value = frame.partition(":")
    assert key == "S"
    message = json.loads(b64decode(value))
    assert message["type"] == "_RJ"
    assert message["users"] == [ticket["userId"]]


def test_serve_reports_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1 port {port}" in error
    assert "already in use" in error


def test_serve_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["serve", "--max-users-per-room", "0"],
        ["serve", "--port", "70000"],
        ["serve", "--unclaimed-room-timeout", "-1"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "use 1 or more" in capsys.readouterr().err
