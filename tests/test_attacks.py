"""Attacks on a relay over real sockets on 127.0.0.1, each followed by a good room."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from test_end_to_end import admit

import roupn
from roupn import Settings
from roupn.errors import ConnectionClosedError
from roupn.frames import decode_text, encode_text
from roupn.interfaces import Connection
from roupn.messages import CODE_ALPHABET
from roupn.testing import EventRecorder

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("quick_keys")]

TIMEOUT = 20
SETTINGS = Settings(transport="websockets")


class FakeClock:
    """A monotonic clock for the rate limits that tests move forward by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running_relay(
    clock: FakeClock | None = None, **options: Any
) -> AsyncIterator[roupn.ServerConnector]:
    async with roupn.create_server_connector(
        host="127.0.0.1",
        port=0,
        settings=SETTINGS,
        limits_clock=clock or FakeClock(),
        **options,
    ) as server:
        yield server


async def check_good_room(relay: roupn.ServerConnector) -> None:
    """Create, join, verify and exchange one message in a new room."""
    alice = roupn.create_client_connector(server_url=relay.url, settings=SETTINGS)
    bob = roupn.create_client_connector(server_url=relay.url, settings=SETTINGS)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        code = await alice.create_room()
        await bob.join_room(code)
        await admit(alice, alice_events, bob, bob_events)
        await alice.message_room({"text": "still served"})
        (message,) = await bob_events.wait_for("on_message")
        assert message.data["text"] == "still served"
        await alice.close_room()


def control(message: dict[str, Any]) -> str:
    return encode_text({"S": json.dumps(message).encode()})


def room_frame(size: int) -> str:
    return encode_text({"I": b"0123456789ab", "E": b"x" * size})


def control_of(frame: str | bytes) -> dict[str, Any]:
    assert isinstance(frame, str)
    message: dict[str, Any] = json.loads(decode_text(frame)["S"])
    return message


async def close_of(socket: Connection) -> ConnectionClosedError:
    """Read until the relay closes ``socket``; return the close."""
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectionClosedError) as info:
        for _ in range(100_000):
            await socket.receive()
    return info.value


async def join_raw(
    stack: AsyncExitStack, relay: roupn.ServerConnector, url: str
) -> tuple[Connection, str]:
    """Open a raw socket that joins a room; return it and its user id."""
    socket = await stack.enter_async_context(SETTINGS.load_transport().connect(url))
    with anyio.fail_after(TIMEOUT):
        joined = control_of(await socket.receive())
    assert joined["type"] == "_RJ"
    return socket, str(joined["userId"])


def creator_url(relay: roupn.ServerConnector, ticket: roupn.RoomTicket) -> str:
    return (
        f"{relay.url}/join-room?code={ticket.room_code}&creator={ticket.creator_secret}"
    )


def joiner_url(relay: roupn.ServerConnector, ticket: roupn.RoomTicket) -> str:
    return f"{relay.url}/join-room?code={ticket.room_code}"


async def raw_http(relay: roupn.ServerConnector, head: str) -> bytes:
    """Send one hand-written HTTP request and return the whole response."""
    port = int(str(relay.url).rsplit(":", 1)[1])
    chunks: list[bytes] = []
    with anyio.fail_after(TIMEOUT):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head.replace("\n", "\r\n").encode() + b"\r\n")
            for _ in range(1000):
                try:
                    chunks.append(await stream.receive())
                except anyio.EndOfStream:
                    break
    return b"".join(chunks)


# Guessing and flooding from one address.


async def test_room_code_guessing_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    async with running_relay(clock, join_attempts_per_minute=5) as relay:
        transport = SETTINGS.load_transport()
        reasons = []
        with caplog.at_level(logging.INFO, logger="roupn.server"):
            for _ in range(8):
                guess = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
                async with transport.connect(
                    f"{relay.url}/join-room?code={guess}"
                ) as socket:
                    closed = await close_of(socket)
                assert closed.code == 1008
                reasons.append(closed.reason)
        assert reasons == ["room_not_found"] * 5 + ["rate_limited"] * 3
        rejections = [r.getMessage() for r in caplog.records if "rate_limited" in r.msg]
        assert len(rejections) == 3
        assert "127.0.0.1:" in rejections[0]

        clock.now += 60
        await check_good_room(relay)


async def test_connection_flood_capped() -> None:
    async with running_relay(
        max_connections_per_address=3, join_attempts_per_minute=None
    ) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            await join_raw(stack, relay, creator_url(relay, ticket))
            for _ in range(2):
                await join_raw(stack, relay, joiner_url(relay, ticket))
            extra = await stack.enter_async_context(
                SETTINGS.load_transport().connect(joiner_url(relay, ticket))
            )
            closed = await close_of(extra)
            assert closed.code == 1013
            assert closed.reason == "too_many_connections_from_address"
            room = relay.get_room(ticket.room_code)
            assert room is not None
            assert len(room.users) == 3
        await check_good_room(relay)


async def test_total_connections_capped() -> None:
    async with running_relay(max_connections=1) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            await join_raw(stack, relay, creator_url(relay, ticket))
            extra = await stack.enter_async_context(
                SETTINGS.load_transport().connect(joiner_url(relay, ticket))
            )
            closed = await close_of(extra)
            assert closed.code == 1013
            assert closed.reason == "too_many_connections"


async def test_room_creation_rate_limited() -> None:
    clock = FakeClock()
    async with running_relay(clock, room_creations_per_minute=2) as relay:
        transport = SETTINGS.load_transport()
        statuses = [
            (await transport.http_get(f"{relay.url}/create-room")).status
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert relay.get_room_count() == 2

        clock.now += 60
        await check_good_room(relay)


async def test_max_rooms_enforced() -> None:
    async with running_relay(max_rooms=2, unclaimed_room_timeout=600) as relay:
        transport = SETTINGS.load_transport()
        statuses = [
            (await transport.http_get(f"{relay.url}/create-room")).status
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert relay.get_room_count() == 2

        for code in relay.get_room_codes():
            relay.remove_room(code)
        await check_good_room(relay)


async def test_pending_joiners_capped() -> None:
    async with running_relay(max_pending_per_room=2) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            await join_raw(stack, relay, creator_url(relay, ticket))
            for _ in range(2):
                await join_raw(stack, relay, joiner_url(relay, ticket))
            extra = await stack.enter_async_context(
                SETTINGS.load_transport().connect(joiner_url(relay, ticket))
            )
            closed = await close_of(extra)
            assert closed.code == 1013
            assert closed.reason == "too_many_pending"
        await check_good_room(relay)


# Frames and timeouts.


async def test_oversized_frame_closed_1009() -> None:
    async with running_relay(max_frame_size=10_000) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(stack, relay, creator_url(relay, ticket))
            joiner, _ = await join_raw(stack, relay, joiner_url(relay, ticket))
            await joiner.send(room_frame(20_000))
            closed = await close_of(joiner)
            assert closed.code == 1009
            assert closed.reason == "frame_too_big"

            # A message over the transport's 1 MiB limit is refused before routing.
            await creator.send(room_frame(2**20))
            closed = await close_of(creator)
            assert closed.code == 1009
        await check_good_room(relay)


async def test_unverified_joiner_timed_out() -> None:
    async with running_relay(verification_timeout=0.3) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(stack, relay, creator_url(relay, ticket))
            joiner, joiner_id = await join_raw(stack, relay, joiner_url(relay, ticket))
            closed = await close_of(joiner)
            assert closed.code == 1008
            assert closed.reason == "verification_timeout"

            with anyio.fail_after(TIMEOUT):
                announced = control_of(await creator.receive())
                assert announced == {"type": "_UJ", "userId": joiner_id}
                announced = control_of(await creator.receive())
            assert announced == {"type": "_UL", "userId": joiner_id}
            room = relay.get_room(ticket.room_code)
            assert room is not None
            assert room.users == (ticket.user_id,)
        await check_good_room(relay)


async def test_idle_socket_closed() -> None:
    async with running_relay(idle_timeout=0.3) as relay:
        relay_events = EventRecorder(relay, TIMEOUT)
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(stack, relay, creator_url(relay, ticket))
            # A socket replies to pings only while a task waits in receive(), so
            # this one stays silent until the relay removes it.
            await relay_events.wait_for("on_room_remove")
            closed = await close_of(creator)
            assert closed.code == 1008
            assert closed.reason == "idle_timeout"
        assert relay.get_room(ticket.room_code) is None


async def test_listening_socket_kept_by_pongs() -> None:
    # The relay pings after half the timeout, so the client has the other half,
    # 0.5 s, to reply even on a busy machine.
    async with running_relay(idle_timeout=1.0) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, creator_id = await join_raw(
                stack, relay, creator_url(relay, ticket)
            )
            send, received = anyio.create_memory_object_stream[str | bytes](10)

            async def listen() -> None:
                while True:
                    await send.send(await creator.receive())

            async with anyio.create_task_group() as group:
                group.start_soon(listen)
                activity = []
                for _ in range(6):
                    await anyio.sleep(0.5)
                    activity.append(getattr(creator, "last_activity", None))
                room = relay.get_room(ticket.room_code)
                assert room is not None
                assert room.users == (creator_id,)
                assert received.statistics().current_buffer_used == 0
                # Each ping from the relay moved the client's activity time.
                assert len(set(activity)) > 1

                _, joiner_id = await join_raw(stack, relay, joiner_url(relay, ticket))
                with anyio.fail_after(TIMEOUT):
                    announced = control_of(await received.receive())
                assert announced == {"type": "_UJ", "userId": joiner_id}
                group.cancel_scope.cancel()


# Misbehaving members.


async def test_control_from_joiner_ignored(caplog: pytest.LogCaptureFixture) -> None:
    async with running_relay() as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            await join_raw(stack, relay, creator_url(relay, ticket))
            joiner, joiner_id = await join_raw(stack, relay, joiner_url(relay, ticket))
            with caplog.at_level(logging.WARNING, logger="roupn.relay"):
                await joiner.send(control({"type": "_RC"}))
                await joiner.send(control({"type": "_UK", "userId": ticket.user_id}))
                await joiner.send(control({"type": "_UV", "userId": joiner_id}))
                await anyio.sleep(0.2)
            ignored = [r.getMessage() for r in caplog.records if "non-creator" in r.msg]
            assert len(ignored) == 3
            assert joiner_id in ignored[0]
            room = relay.get_room(ticket.room_code)
            assert room is not None
            assert room.users == (ticket.user_id, joiner_id)
            assert room.verified_users == (ticket.user_id,)
        await check_good_room(relay)


async def test_creator_secret_replay_refused() -> None:
    async with running_relay() as relay:
        relay_events = EventRecorder(relay, TIMEOUT)
        ticket = relay.create_room()
        transport = SETTINGS.load_transport()
        async with AsyncExitStack() as stack:
            await join_raw(stack, relay, creator_url(relay, ticket))
            async with transport.connect(creator_url(relay, ticket)) as replay:
                closed = await close_of(replay)
            assert closed.code == 1008
            assert closed.reason == "creator_already_joined"

        # Once the creator left, the room and its secret are gone.
        await relay_events.wait_for("on_room_remove")
        async with transport.connect(creator_url(relay, ticket)) as replay:
            closed = await close_of(replay)
        assert closed.code == 1008
        assert closed.reason == "room_not_found"
        await check_good_room(relay)


async def test_verified_flood_bounded() -> None:
    buffer_limit = 256 * 1024
    frame_count = 800
    async with running_relay(max_send_buffer=buffer_limit) as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(stack, relay, creator_url(relay, ticket))
            members = {}
            for name in ["flooder", "reader", "stalled"]:
                members[name] = await join_raw(stack, relay, joiner_url(relay, ticket))
                await creator.send(control({"type": "_UV", "userId": members[name][1]}))
            flooder = members["flooder"][0]
            stalled_id = members["stalled"][1]
            received = {"creator": 0, "reader": 0}
            all_received = anyio.Event()
            max_queued = 0

            async def read(name: str, socket: Connection) -> None:
                for _ in range(100_000):
                    frame = await socket.receive()
                    if "|E:" in str(frame):
                        received[name] += 1
                    if min(received.values()) >= frame_count:
                        all_received.set()

            async def watch_queues() -> None:
                nonlocal max_queued
                for _ in range(100_000):
                    for peer in list(relay._peers.values()):
                        max_queued = max(max_queued, peer.outbox.buffered_bytes)
                    await anyio.sleep(0.001)

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as group:
                    group.start_soon(read, "creator", creator)
                    group.start_soon(read, "reader", members["reader"][0])
                    group.start_soon(watch_queues)
                    for number in range(frame_count):
                        await flooder.send(room_frame(32_000))
                        if number % 4 == 0:
                            # Paced so that members that read keep up.
                            await anyio.sleep(0.01)
                    await all_received.wait()
                    group.cancel_scope.cancel()

            assert received == {"creator": frame_count, "reader": frame_count}
            assert 0 < max_queued <= buffer_limit
            room = relay.get_room(ticket.room_code)
            assert room is not None
            # The member that never read fell behind and was disconnected.
            assert stalled_id not in room.users
            assert members["reader"][1] in room.users
        await check_good_room(relay)


# Browser origins.


async def test_disallowed_origin_rejected() -> None:
    async with running_relay(allowed_origins=["https://good.example"]) as relay:
        ticket = relay.create_room()
        upgrade = (
            f"GET /join-room?code={ticket.room_code} HTTP/1.1\n"
            "Host: 127.0.0.1\nUpgrade: websocket\nConnection: Upgrade\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n"
        )
        response = await raw_http(relay, upgrade + "Origin: https://evil.example\n")
        assert response.startswith(b"HTTP/1.1 403 ")
        response = await raw_http(relay, upgrade + "Origin: https://good.example\n")
        assert response.startswith(b"HTTP/1.1 101 ")

        create = "GET /create-room HTTP/1.1\nHost: 127.0.0.1\n"
        response = await raw_http(relay, create + "Origin: https://evil.example\n")
        assert response.startswith(b"HTTP/1.1 403 ")
        response = await raw_http(relay, create + "Origin: https://good.example\n")
        assert response.startswith(b"HTTP/1.1 200 ")
        assert b"Access-Control-Allow-Origin: https://good.example" in response
        # Clients other than browsers send no Origin header and are served.
        await check_good_room(relay)
