"""Room members for the relay benchmarks: links to a relay and joining a room.

A link is one member's connection to the relay: a raw WebSocket from the
``websockets`` asyncio client, or a connection through a roupn transport for the
in-process runs. :func:`join_room` creates a room, joins it and verifies the
joiners as a creator would.
"""

from __future__ import annotations

import base64
import inspect
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.abc

from roupn.frames import decode_text
from roupn.interfaces import Connection, Transport
from roupn.messages import MessageType

__all__ = [
    "JOIN_TIMEOUT",
    "Link",
    "LinkOpener",
    "LinkPool",
    "Member",
    "RoomRequest",
    "join_room",
    "open_websocket",
    "request_room_over_http",
    "transport_link_opener",
]

# Seconds to open a connection or receive a frame while joining.
JOIN_TIMEOUT = 10.0


class Link(Protocol):
    """One member's connection to the relay, carrying text frames."""

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str: ...


LinkOpener = Callable[[str], AbstractAsyncContextManager[Link]]
RoomRequest = Callable[[], Awaitable[dict[str, Any]]]


# Links over the websockets library's asyncio client.


class _WebsocketLink:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        await self._connection.send(text)

    async def receive(self) -> str:
        message = await self._connection.recv()
        if not isinstance(message, str):
            raise ValueError("the relay sent a binary message; it sends only text")
        return message


@asynccontextmanager
async def open_websocket(url: str) -> AsyncIterator[Link]:
    """Open a raw WebSocket with the ``websockets`` asyncio client.

    An ``http`` URL, as the relay reports it, is opened as ``ws``.
    """
    from websockets.asyncio.client import connect

    if url.startswith("http://"):
        url = "ws://" + url.removeprefix("http://")

    options: dict[str, Any] = {
        "compression": None,
        "open_timeout": JOIN_TIMEOUT,
        # A relay that leaves a close frame unanswered costs each member this
        # long at the end, so it is short.
        "close_timeout": 0.5,
        "max_size": 2**20,
        # Frames are read only while a run lasts. A member that fell behind by
        # more than the default 16 frames would stop reading the socket and then
        # wait for its close timeout when closed.
        "max_queue": 1024,
    }
    # Loopback traffic must not go through a proxy from the environment.
    if "proxy" in inspect.signature(connect.__init__).parameters:
        options["proxy"] = None
    async with connect(url, **options) as connection:
        yield _WebsocketLink(connection)


async def request_room_over_http(base_url: str) -> dict[str, Any]:
    """Create a room with a GET request to the relay's create-room endpoint."""
    import httpx

    async with httpx.AsyncClient(trust_env=False, timeout=JOIN_TIMEOUT) as client:
        response = await client.get(base_url + "/create-room")
        response.raise_for_status()
        ticket: dict[str, Any] = response.json()
        return ticket


# Links over a roupn transport, for the in-process runs.


class _TransportLink:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        await self._connection.send(text)

    async def receive(self) -> str:
        message = await self._connection.receive()
        if not isinstance(message, str):
            raise ValueError("the relay sent a binary message; it sends only text")
        return message


def transport_link_opener(transport: Transport) -> LinkOpener:
    """Return a link opener that connects through a roupn transport."""

    @asynccontextmanager
    async def open_link(url: str) -> AsyncIterator[Link]:
        async with transport.connect(url) as connection:
            yield _TransportLink(connection)

    return open_link


# Joining a room.


@dataclass(slots=True)
class Member:
    """A member of the flooded room: its place in join order, id and link."""

    index: int
    user_id: str
    link: Link


def _join_url(base_url: str, room_code: str, creator_secret: str | None) -> str:
    query = {"code": room_code}
    if creator_secret is not None:
        query["creator"] = creator_secret
    return f"{base_url}/join-room?{urllib.parse.urlencode(query)}"


def _control_frame(message: dict[str, Any]) -> str:
    encoded = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return "S:" + base64.b64encode(encoded).decode("ascii")


async def _read_room_joined(link: Link) -> str:
    """Return the member's id from the relay's room joined message, skipping others."""
    with anyio.fail_after(JOIN_TIMEOUT):
        while True:
            frame = decode_text(await link.receive())
            if "S" not in frame:
                continue
            message = json.loads(frame["S"])
            if message.get("type") == MessageType.ROOM_JOINED:
                return str(message["userId"])


async def _verify(creator: Member, joiner: Member) -> None:
    """Send the creator's ``_UV`` control frame for one joiner.

    The relay then counts the joiner as verified and forwards room frames to it.
    """
    message = {
        "type": MessageType.USER_VERIFIED.value,
        "userId": joiner.user_id,
        "sender": creator.user_id,
        "senderTime": time.time_ns() // 1_000_000,
    }
    await creator.link.send(_control_frame(message))


class LinkPool:
    """Open links that stay open until the pool closes them all at once.

    Each link lives in a task of its own, so closing the pool runs every closing
    handshake at the same time instead of one after another.
    """

    def __init__(self, open_link: LinkOpener) -> None:
        self.open_link = open_link
        self._release = anyio.Event()
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> LinkPool:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._group is not None
        self._release.set()
        return await self._group.__aexit__(*exc_info)

    async def open(self, url: str) -> Link:
        """Open a link to ``url`` that stays open until the pool closes."""
        assert self._group is not None
        link: Link = await self._group.start(self._hold, url)
        return link

    async def _hold(self, url: str, *, task_status: anyio.abc.TaskStatus[Link]) -> None:
        async with self.open_link(url) as link:
            task_status.started(link)
            await self._release.wait()


async def join_room(
    pool: LinkPool,
    base_url: str | Sequence[str],
    request_room: RoomRequest,
    size: int,
) -> list[Member]:
    """Create a room, join it with ``size`` members and return them, creator first.

    The creator verifies each joiner once the relay admitted it, as a creator
    reading codes one by one would, so few joiners wait for verification at once.
    The links stay open until ``pool`` closes. Given several relay URLs, as for
    relays that share rooms through a backplane, member ``i`` joins through URL
    ``i`` modulo their number.
    """
    base_urls = [base_url] if isinstance(base_url, str) else list(base_url)
    ticket = await request_room()
    room_code = ticket["roomCode"]
    members: list[Member] = []
    for index in range(size):
        secret = ticket["creatorSecret"] if index == 0 else None
        url = _join_url(base_urls[index % len(base_urls)], room_code, secret)
        link = await pool.open(url)
        member = Member(index, await _read_room_joined(link), link)
        members.append(member)
        if index > 0:
            await _verify(members[0], member)
    return members
