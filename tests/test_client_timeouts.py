"""Client requests to a relay on 127.0.0.1 that accepts TCP and then stalls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import anyio
import anyio.abc
import anyio.to_thread
import pytest
from roupn_websockets import WebsocketsTransport

import roupn
from roupn.errors import ConnectionClosedError
from roupn.testing import EventRecorder

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("quick_keys")]

SETTINGS = roupn.Settings(transport="websockets")

# Seconds after which a test fails because the client did not time out itself.
TEST_TIMEOUT = 10.0

StreamHandler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


async def read_forever(stream: anyio.abc.SocketStream) -> None:
    """Read the request and never send a byte back."""
    while True:
        await stream.receive()


async def drip_response(stream: anyio.abc.SocketStream) -> None:
    """Send a status line and headers one byte every 50 ms, never ending them."""
    await stream.receive()
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"x" * 10_000
    for byte in head:
        await stream.send(bytes([byte]))
        await anyio.sleep(0.05)


@asynccontextmanager
async def stalling_server(handler: StreamHandler) -> AsyncIterator[str]:
    """Accept TCP connections on 127.0.0.1 and hand each to ``handler``.

    Yields the server's http URL. Connections stay open until the block ends.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    accepted = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await handler(stream)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{port}"
        assert accepted > 0, "the client never connected"
        group.cancel_scope.cancel()


async def test_create_room_times_out() -> None:
    async with stalling_server(read_forever) as url:
        client = roupn.create_client_connector(
            server_url=url, settings=SETTINGS, join_timeout=0.5
        )
        async with client:
            with anyio.fail_after(TEST_TIMEOUT):
                with pytest.raises(roupn.JoinTimeoutError, match=r"within 0\.5 s"):
                    await client.create_room()
            assert client.room_code is None
            assert client.state is roupn.ConnectionState.DISCONNECTED


async def test_join_room_times_out() -> None:
    async with stalling_server(read_forever) as url:
        client = roupn.create_client_connector(
            server_url=url, settings=SETTINGS, join_timeout=0.5
        )
        async with client:
            with anyio.fail_after(TEST_TIMEOUT):
                with pytest.raises(roupn.JoinTimeoutError, match=r"within 0\.5 s"):
                    await client.join_room("ABCDEF")


async def test_join_stops_at_transport_timeout() -> None:
    async with stalling_server(read_forever) as url:
        client = roupn.create_client_connector(
            server_url=url, settings=SETTINGS, join_timeout=TEST_TIMEOUT
        )
        # The transport's open timeout ends the handshake before join_timeout.
        client._transport = WebsocketsTransport(open_timeout=0.5)
        async with client:
            with anyio.fail_after(TEST_TIMEOUT):
                with pytest.raises(roupn.JoinRejectedError) as info:
                    await client.join_room("ABCDEF")
    assert not isinstance(info.value, roupn.JoinTimeoutError)
    message = str(info.value)
    assert message.startswith("cannot join the room: ")
    assert "no handshake response within 0.5 s" in message


async def test_default_timeouts_are_bounded() -> None:
    client = roupn.create_client_connector(settings=SETTINGS)
    transport = WebsocketsTransport()
    assert 0 < client.join_timeout < 120
    assert 0 < transport.client_options.open_timeout < 120


async def test_http_get_times_out_on_drip() -> None:
    # httpx's own timeout applies to each read, which every byte here resets.
    transport = WebsocketsTransport(open_timeout=0.5)
    async with stalling_server(drip_response) as url:
        with anyio.fail_after(TEST_TIMEOUT):
            with pytest.raises(ConnectionClosedError, match=r"within 0\.5 s") as info:
                await transport.http_get(url + "/create-room")
    assert info.value.code == 1006


async def test_connect_times_out_without_handshake() -> None:
    transport = WebsocketsTransport(open_timeout=0.5)
    async with stalling_server(read_forever) as url:
        with anyio.fail_after(TEST_TIMEOUT):
            with pytest.raises(ConnectionClosedError, match=r"within 0\.5 s") as info:
                async with transport.connect(url + "/join-room?code=ABCDEF"):
                    pass
    assert info.value.code == 1006


def start_relay(port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "roupn", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )


@asynccontextmanager
async def relay_process() -> AsyncIterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``roupn serve`` in a process of its own, on a free port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = start_relay(port)
    try:
        assert process.stderr is not None
        with anyio.fail_after(20):
            line = ""
            while "relay listening" not in line:
                line = await anyio.to_thread.run_sync(process.stderr.readline)
        yield f"http://127.0.0.1:{port}", process
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.usefixtures("quick_keys")
async def test_stopped_relay_detected_by_pings() -> None:
    async with (
        relay_process() as (url, process),
        roupn.create_client_connector(server_url=url, keepalive_interval=0.5) as client,
    ):
        events = EventRecorder(client, 30)
        await client.create_room()
        # Quiet for several intervals: the relay's pongs keep the room.
        await anyio.sleep(1.5)
        assert client.state is roupn.ConnectionState.CONNECTED

        os.kill(process.pid, signal.SIGSTOP)
        (info,) = await events.wait_for("on_room_leave")
        assert info["reason"] == "no frame from the relay for 1 s"
        ((error,),) = events.of("on_error")
        assert isinstance(error, ConnectionClosedError)
        assert error.code == 1006
        assert client.state is roupn.ConnectionState.DISCONNECTED


def test_keepalive_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keepalive_interval must be more than 0"):
        roupn.create_client_connector(keepalive_interval=0)
