"""Closing handshakes with a busy relay over real sockets on 127.0.0.1."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest
from test_attacks import (
    TIMEOUT,
    control,
    creator_url,
    join_raw,
    joiner_url,
    room_frame,
    running_relay,
)

from roupn.errors import ConnectionClosedError
from roupn.interfaces import Connection

pytestmark = [pytest.mark.anyio]

ROOM_SIZE = 16
SENDERS = 4
FRAMES_PER_SENDER = 100


async def test_busy_room_answers_every_close() -> None:
    async with running_relay() as relay:
        ticket = relay.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(stack, relay, creator_url(relay, ticket))
            members: list[Connection] = [creator]
            for _ in range(ROOM_SIZE - 1):
                joiner, joiner_id = await join_raw(
                    stack, relay, joiner_url(relay, ticket)
                )
                await creator.send(control({"type": "_UV", "userId": joiner_id}))
                members.append(joiner)

            async def drain(socket: Connection) -> None:
                try:
                    for _ in range(1_000_000):
                        await socket.receive()
                except ConnectionClosedError:
                    return

            async def close(socket: Connection) -> None:
                await socket.close(1000)

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as readers:
                    for socket in members:
                        readers.start_soon(drain, socket)
                    for _ in range(FRAMES_PER_SENDER):
                        for sender in members[:SENDERS]:
                            await sender.send(room_frame(256))
                    # Every joiner leaves at once, so the relay announces each
                    # leave to members whose own close frames it replies to.
                    async with anyio.create_task_group() as closers:
                        for socket in members[1:]:
                            closers.start_soon(close, socket)
                    readers.cancel_scope.cancel()

            for number, socket in enumerate(members[1:], 1):
                received = socket._protocol.close_rcvd  # type: ignore[attr-defined]
                assert received is not None, f"member {number} got no close frame"
                assert received.code == 1000
