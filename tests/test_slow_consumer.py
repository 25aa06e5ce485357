"""A member that stops reading: its send buffer stays bounded and it is dropped."""

from __future__ import annotations

import importlib.util
import logging
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from test_attacks import (
    TIMEOUT,
    check_good_room,
    control,
    creator_url,
    join_raw,
    joiner_url,
    room_frame,
    running_relay,
)

import roupn
from roupn.cli import main
from roupn.errors import ConnectionClosedError
from roupn.interfaces import Connection
from roupn.outbox import DEFAULT_MAX_SEND_BUFFER, Outbox
from roupn.testing import EventRecorder

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("quick_keys")]

FRAME_SIZE = 32_000
BUFFER_LIMIT = 256 * 1024
# Frames the members that read may lag behind the sender, well under the limit.
WINDOW = 4
# Enough frames to fill the socket buffers of the stalled member many times over.
MAX_FRAMES = 3000


async def test_stalled_reader_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="roupn.server")
    async with running_relay(max_send_buffer=BUFFER_LIMIT) as relay:
        relay_events = EventRecorder(relay, TIMEOUT)
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(stack, relay, creator_url(relay, ticket))
            members: dict[str, tuple[Connection, str]] = {}
            for name in ["sender", "reader", "stalled"]:
                members[name] = await join_raw(stack, relay, joiner_url(relay, ticket))
                await creator.send(control({"type": "_UV", "userId": members[name][1]}))
            sender = members["sender"][0]
            stalled, stalled_id = members["stalled"]
            received = {"creator": 0, "reader": 0}
            sent = 0
            max_buffered = 0
            stalled_left = anyio.Event()

            async def read(name: str, socket: Connection) -> None:
                for _ in range(100_000):
                    if "|E:" in str(await socket.receive()):
                        received[name] += 1

            async def watch_stalled() -> None:
                nonlocal max_buffered
                while True:
                    peer = relay._peers.get(stalled_id)
                    if peer is None:
                        stalled_left.set()
                        return
                    max_buffered = max(max_buffered, peer.outbox.buffered_bytes)
                    await anyio.sleep(0.001)

            async def caught_up(count: int) -> None:
                for _ in range(1_000_000):
                    if min(received.values()) >= count:
                        return
                    await anyio.sleep(0.001)

            with anyio.fail_after(TIMEOUT * 2):
                async with anyio.create_task_group() as group:
                    group.start_soon(read, "creator", creator)
                    group.start_soon(read, "reader", members["reader"][0])
                    group.start_soon(watch_stalled)
                    # Flood until the stalled member is dropped, paced so that the
                    # members that read never lag more than a few frames behind.
                    while not stalled_left.is_set() and sent < MAX_FRAMES:
                        await caught_up(sent - WINDOW)
                        await sender.send(room_frame(FRAME_SIZE))
                        sent += 1
                    assert stalled_left.is_set(), f"still a member after {sent} frames"
                    await caught_up(sent)
                    # The others keep receiving after the drop.
                    for _ in range(50):
                        await sender.send(room_frame(FRAME_SIZE))
                        sent += 1
                    await caught_up(sent)
                    group.cancel_scope.cancel()

            assert received == {"creator": sent, "reader": sent}
            assert 0 < max_buffered <= BUFFER_LIMIT
            room = relay.get_room(ticket.room_code)
            assert room is not None
            assert stalled_id not in room.users
            assert members["reader"][1] in room.users
            left = await relay_events.wait_for("on_user_leave")
            assert left == (ticket.room_code, stalled_id)
            warnings = [r.getMessage() for r in caplog.records]
            dropped = [m for m in warnings if stalled_id in m and "too slowly" in m]
            assert len(dropped) == 1, warnings

            # Once it reads again, the stalled member finds its socket closed:
            # with 1013 if the close frame got through, else without one (1006).
            with (
                anyio.fail_after(TIMEOUT),
                pytest.raises(ConnectionClosedError) as info,
            ):
                for _ in range(100_000):
                    await stalled.receive()
            assert info.value.code in (1013, 1006)
        await check_good_room(relay)


# The buffer itself, without sockets.


class RecordingConnection:
    """A connection that encodes frames as bytes and records every write."""

    wire_format = "test"

    def __init__(self) -> None:
        self.encodings = 0
        self.writes: list[list[bytes]] = []
        self.closed: tuple[int, str] | None = None

    @property
    def remote_address(self) -> str:
        return "test"

    def encode(self, message: str | bytes) -> bytes:
        self.encodings += 1
        return message.encode() if isinstance(message, str) else message

    async def send(self, message: str | bytes) -> None:
        raise AssertionError("an encoding connection gets send_encoded calls only")

    async def send_encoded(self, messages: list[bytes]) -> None:
        self.writes.append(messages)

    async def receive(self) -> str | bytes:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


async def test_outbox_encodes_once_per_format() -> None:
    first, second = RecordingConnection(), RecordingConnection()
    outboxes = [Outbox(first, 1000), Outbox(second, 1000)]
    encoded: dict[str, bytes] = {}
    for outbox in outboxes:
        assert outbox.put("frame", encoded)
    assert first.encodings + second.encodings == 1
    assert encoded == {"test": b"frame"}


async def test_outbox_writes_queue_in_one_call() -> None:
    connection = RecordingConnection()
    outbox = Outbox(connection, 1000)
    for number in range(5):
        assert outbox.put(f"frame {number}", {})
    outbox.close(1000, "done")
    with anyio.fail_after(TIMEOUT):
        await outbox.run()
    assert connection.writes == [[f"frame {n}".encode() for n in range(5)]]
    assert connection.closed == (1000, "done")


async def test_outbox_rejects_frame_over_limit() -> None:
    outbox = Outbox(RecordingConnection(), 10)
    assert outbox.put("12345678", {})
    assert outbox.buffered_bytes == 8
    assert not outbox.put("123", {})
    assert outbox.overflowed
    assert outbox.buffered_bytes == 8


async def test_outbox_takes_large_frame_when_empty() -> None:
    outbox = Outbox(RecordingConnection(), 10)
    assert outbox.put("x" * 50, {})
    assert outbox.buffered_bytes == 50
    assert not outbox.put("x", {})


def test_outbox_rejects_invalid_limit() -> None:
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        Outbox(RecordingConnection(), 0)


# The command line.


def test_serve_passes_send_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    options: dict[str, Any] = {}

    def fake_connector(**connector_options: Any) -> None:
        options.update(connector_options)
        raise OSError("not started in this test")

    monkeypatch.setattr("roupn.server.create_server_connector", fake_connector)
    assert main(["serve", "--max-send-buffer=65536"]) == 1
    assert options["max_send_buffer"] == 65536
    assert main(["serve"]) == 1
    assert options["max_send_buffer"] == DEFAULT_MAX_SEND_BUFFER


def test_serve_rejects_zero_send_buffer(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--max-send-buffer", "0"])
    assert info.value.code == 2
    assert "--max-send-buffer" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_uses_uvloop_on_asyncio(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(function: Any, *args: Any, **options: Any) -> None:
        calls.append(options)

    monkeypatch.setattr("roupn.cli.anyio.run", fake_run)
    assert main(["serve", f"--async-backend={backend}"]) == 0
    (options,) = calls
    assert options["backend"] == backend
    uvloop_installed = importlib.util.find_spec("uvloop") is not None
    expected = {"use_uvloop": True} if backend == "asyncio" and uvloop_installed else {}
    assert options["backend_options"] == expected


def test_relay_rejects_zero_send_buffer() -> None:
    with pytest.raises(ValueError, match="max_send_buffer must be at least 1 byte"):
        roupn.create_server_connector(max_send_buffer=0)
