"""The relay server connector: the relay state machine driven over a transport."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import ConnectionClosedError, RoomNotFoundError
from .events import EventEmitter
from .interfaces import Connection, HttpRequest, HttpResponse, Serializer
from .relay import (
    Action,
    Close,
    JoinRefused,
    Notice,
    RelayState,
    Room,
    RoomTicket,
    Send,
)
from .settings import Settings

__all__ = ["RoomInfo", "ServerConnector", "create_server_connector"]

logger = logging.getLogger(__name__)

SERVER_EVENTS = (
    "on_room_message",
    "on_room_remove",
    "on_user_join",
    "on_user_leave",
    "on_user_verified",
)

TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A snapshot of one room: its code, creator, limit and members in join order."""

    code: str
    creator_id: str
    max_users: int
    users: tuple[str, ...]
    verified_users: tuple[str, ...]

    @classmethod
    def of(cls, room: Room) -> RoomInfo:
        return cls(
            code=room.code,
            creator_id=room.creator_id,
            max_users=room.max_users,
            users=tuple(room.members),
            verified_users=tuple(room.verified_ids),
        )


@dataclass(slots=True)
class _Peer:
    connection: Connection
    outbox: MemoryObjectSendStream[str | bytes | tuple[int, str]]
    cancel_scope: anyio.CancelScope


class ServerConnector(EventEmitter):
    """A relay server: serves create-room requests and room sockets.

    Use it as an async context manager; it listens while the block runs::

        async with roupn.create_server_connector(port=3000) as server:
            print(server.url)
            await anyio.sleep_forever()

    Listeners (``on_room_message``, ``on_room_remove``, ``on_user_join``,
    ``on_user_leave``, ``on_user_verified``) get the room code first, then the
    user id, then for ``on_room_message`` the raw (encrypted) frame text.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        settings: Settings | None = None,
        content_type: str | None = None,
        serialize: Callable[[Any], bytes] | None = None,
        deserialize: Callable[[bytes], Any] | None = None,
        create_room_endpoint: str = "/create-room",
        join_room_endpoint: str = "/join-room",
        max_users_per_room: int = 50,
        unclaimed_room_timeout: float = 60.0,
        max_frame_size: int = 1_000_000,
        send_queue_size: int = 1024,
        cors_origin: str | None = "*",
        **listeners: Callable[..., Any],
    ) -> None:
        super().__init__(SERVER_EVENTS)
        for event, listener in listeners.items():
            if event not in SERVER_EVENTS:
                raise TypeError(
                    f"unknown option {event!r}: events are {', '.join(SERVER_EVENTS)}"
                )
            self.add_listener(event, listener)
        self.settings = settings or Settings()
        self.host = host
        self.port = port
        self.create_room_endpoint = create_room_endpoint
        self.join_room_endpoint = join_room_endpoint
        self.send_queue_size = send_queue_size
        self.cors_origin = cors_origin

        serializer: Serializer | None = None
        if serialize is None or deserialize is None or content_type is None:
            serializer = self.settings.load_serializer()
        self.content_type = content_type or (
            serializer.content_type if serializer else ""
        )
        self.serialize = serialize or (serializer.dumps if serializer else None)
        self.deserialize = deserialize or (serializer.loads if serializer else None)
        assert self.serialize is not None and self.deserialize is not None

        self.state = RelayState(
            dumps=self.serialize,
            loads=self.deserialize,
            max_users_per_room=max_users_per_room,
            unclaimed_room_timeout=unclaimed_room_timeout,
            max_frame_size=max_frame_size,
            binary=serializer.binary if serializer else False,
        )
        self.url: str | None = None
        self._peers: dict[str, _Peer] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None

    # Lifecycle.

    async def __aenter__(self) -> Self:
        transport = self.settings.load_transport()
        async with AsyncExitStack() as stack:
            self._task_group = await stack.enter_async_context(
                anyio.create_task_group()
            )
            self._spawn = self._task_group.start_soon
            self.url = await self._task_group.start(
                transport.serve, self, self.host, self.port
            )
            self._task_group.start_soon(self._expire_rooms)
            logger.info("relay listening on %s", self.url)
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._exit_stack is not None and self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._exit_stack.__aexit__(exc_type, exc, traceback)
        finally:
            self._task_group = None
            self._spawn = None
            logger.info("relay stopped")

    async def serve_forever(self) -> None:
        """Serve until cancelled (for example by Ctrl-C)."""
        await anyio.sleep_forever()

    async def _expire_rooms(self) -> None:
        period = max(0.05, min(self.state.unclaimed_room_timeout / 4, 5.0))
        while True:
            await anyio.sleep(period)
            self._run(self.state.expire_unclaimed())

    # Actions from the state machine.

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._deliver(action.user_id, action.frame)
            elif isinstance(action, Close):
                self._close(action.user_id, action.code, action.reason)
            elif isinstance(action, Notice):
                self.emit(action.event, *action.args)

    def _deliver(self, user_id: str, frame: str | bytes) -> None:
        peer = self._peers.get(user_id)
        if peer is None:
            return
        try:
            peer.outbox.send_nowait(frame)
        except anyio.WouldBlock:
            logger.warning(
                "user %s fell %d frames behind; disconnecting",
                user_id,
                self.send_queue_size,
            )
            self._run(self.state.leave(user_id, "too_slow", TRY_AGAIN_LATER))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def _close(self, user_id: str, code: int, reason: str) -> None:
        peer = self._peers.pop(user_id, None)
        if peer is None:
            return
        try:
            peer.outbox.send_nowait((code, reason))
        except anyio.WouldBlock:
            # The queue is full of frames nobody will read: skip them and close now.
            peer.cancel_scope.cancel()
            assert self._task_group is not None
            self._task_group.start_soon(peer.connection.close, code, reason)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        peer.outbox.close()

    # The relay application that the transport serves.

    def _json_response(self, status: int, message: Any) -> HttpResponse:
        assert self.serialize is not None
        headers = [("Content-Type", self.content_type)]
        if self.cors_origin:
            headers.append(("Access-Control-Allow-Origin", self.cors_origin))
        return HttpResponse(status, self.serialize(message), headers)

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        if request.path != self.create_room_endpoint:
            return self._json_response(404, {"error": f"no endpoint at {request.path}"})
        if request.method != "GET":
            return self._json_response(405, {"error": "use GET to create a room"})
        limit: int | None = None
        raw_limit = request.query.get("limit")
        if raw_limit:
            try:
                limit = int(raw_limit)
                if limit < 1:
                    raise ValueError
            except ValueError:
                message = (
                    f"invalid limit {raw_limit!r}: use a whole number of at least 1"
                )
                return self._json_response(400, {"error": message})
        ticket = self.create_room(limit)
        return self._json_response(200, ticket.to_message())

    def check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        if request.path != self.join_room_endpoint:
            return self._json_response(404, {"error": f"no endpoint at {request.path}"})
        return None

    async def handle_socket(self, request: HttpRequest, connection: Connection) -> None:
        await self.join_room(
            request.query.get("code"), connection, request.query.get("creator")
        )

    # Public methods.

    def create_room(self, limit: int | None = None) -> RoomTicket:
        """Make a room; return the creator's secret and id and the room code."""
        return self.state.create_room(limit)

    async def join_room(
        self,
        room_code: str | None,
        connection: Connection,
        creator_secret: str | None = None,
    ) -> None:
        """Serve ``connection`` as a member of a room until it closes.

        A refused join closes the connection with code 1008 and the reason.
        """
        joined = self.state.join(room_code, creator_secret)
        if isinstance(joined, JoinRefused):
            logger.info(
                "join from %s refused: %s", connection.remote_address, joined.reason
            )
            await connection.close(joined.code, joined.reason)
            return
        user_id, actions = joined
        send, receive = anyio.create_memory_object_stream[
            str | bytes | tuple[int, str]
        ](self.send_queue_size)
        try:
            with anyio.CancelScope() as scope:
                self._peers[user_id] = _Peer(connection, send, scope)
                self._run(actions)
                async with anyio.create_task_group() as group:
                    group.start_soon(
                        self._write, connection, receive, group.cancel_scope
                    )
                    await self._read(user_id, connection)
                    group.cancel_scope.cancel()
        finally:
            # Ends the membership when the socket closed first; no-op after a kick.
            self._run(self.state.leave(user_id, reason="disconnected"))
            self._peers.pop(user_id, None)
            send.close()

    async def _read(self, user_id: str, connection: Connection) -> None:
        while True:
            try:
                message = await connection.receive()
            except ConnectionClosedError as exc:
                logger.debug("< user %s closed: %s", user_id, exc)
                return
            try:
                actions = self.state.receive(user_id, message)
            except Exception:
                logger.exception("< frame from user %s could not be handled", user_id)
                self._run(self.state.leave(user_id, "internal_error", INTERNAL_ERROR))
                return
            self._run(actions)

    async def _write(
        self,
        connection: Connection,
        outbox: MemoryObjectReceiveStream[str | bytes | tuple[int, str]],
        scope: anyio.CancelScope,
    ) -> None:
        async with outbox:
            async for item in outbox:
                if isinstance(item, tuple):
                    code, reason = item
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await connection.close(code, reason)
                    break
                try:
                    await connection.send(item)
                except ConnectionClosedError:
                    break
        scope.cancel()

    def leave_room(self, room_code: str, user_id: str) -> None:
        """Remove a user from a room and close its socket.

        Raises:
            RoomNotFoundError: the user is not in a room with this code.
        """
        room = self.state.room_of(user_id)
        if room is None or room.code != room_code:
            raise RoomNotFoundError(f"user {user_id!r} is not in room {room_code!r}")
        self._run(self.state.leave(user_id, reason="removed_by_relay"))

    def remove_room(self, room_code: str) -> None:
        """Remove every user of a room, then the room.

        Raises:
            RoomNotFoundError: no room has this code.
        """
        if self.state.get_room(room_code) is None:
            raise RoomNotFoundError(f"no room has the code {room_code!r}")
        self._run(self.state.remove_room(room_code, reason="removed_by_relay"))

    def message_room(self, room_code: str, message: dict[str, Any]) -> None:
        """Send a control message (``S``) from the relay to every verified user."""
        self._run(self.state.message_room(room_code, message))

    def message_user(
        self, room_code: str, user_id: str, message: dict[str, Any]
    ) -> None:
        """Send a control message (``S``) from the relay to one user of a room."""
        self._run(self.state.message_user(room_code, user_id, message))

    def get_room(self, room_code: str) -> RoomInfo | None:
        """Return a snapshot of a room, or None if no room has this code."""
        room = self.state.get_room(room_code)
        return RoomInfo.of(room) if room is not None else None

    def get_room_codes(self) -> list[str]:
        """Return the codes of every room."""
        return list(self.state.rooms)

    def get_room_count(self) -> int:
        """Return the number of rooms."""
        return len(self.state.rooms)


def create_server_connector(**options: Any) -> ServerConnector:
    """Make a relay server; see :class:`ServerConnector` for the options."""
    return ServerConnector(**options)
