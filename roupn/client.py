"""The client connector: creates and joins rooms and exchanges encrypted messages."""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import anyio
import anyio.abc
import anyio.to_thread

from .errors import (
    ConnectionClosedError,
    FrameError,
    JoinRejectedError,
    JoinTimeoutError,
    MessageError,
    ProtocolError,
    RoomFullError,
    RoomNotFoundError,
    RoupnError,
    StateError,
)
from .events import EventEmitter
from .frames import Frame, decode_binary, decode_text, encode_binary, encode_text
from .interfaces import (
    CipherSuite,
    Connection,
    Identity,
    KeepaliveConnection,
    Serializer,
    Transport,
)
from .messages import ConnectionState
from .session import (
    CheckData,
    Leave,
    Message,
    Notice,
    RoomOptions,
    RoomSession,
    SendFrame,
)
from .settings import Settings

__all__ = ["ClientConnector", "create_client_connector"]

logger = logging.getLogger(__name__)

CLIENT_EVENTS = (
    "on_connection",
    "on_error",
    "on_message",
    "on_room_join",
    "on_room_leave",
    "on_user_join",
    "on_user_leave",
    "on_user_verified",
    "on_user_verification_code",
)

DataCheck = Callable[[dict[str, Any]], bool | Awaitable[bool]]

_REFUSALS: dict[str, type[RoupnError]] = {
    "room_not_found": RoomNotFoundError,
    "missing_room_code": RoomNotFoundError,
    "room_full": RoomFullError,
}


class ClientConnector(EventEmitter):
    """A client of a roupn relay: one room at a time.

    Use it as an async context manager; key generation starts on entry, in a worker
    thread, so that it is usually done before the room is joined::

        async with roupn.create_client_connector(server_url=url) as client:
            code = await client.create_room(public_data={"name": "Ada"})

    Listeners: ``on_connection(state)``, ``on_error(error)``, ``on_message(message)``,
    ``on_room_join(info)``, ``on_room_leave(info)``, ``on_user_join(user_id)``,
    ``on_user_leave(user_id)``, ``on_user_verified(user_id)`` and
    ``on_user_verification_code({"userId", "code"})``. Listeners may be plain or
    async functions.

    Over a transport that can ping (``websockets``), a relay that sends nothing for
    ``keepalive_interval`` seconds is pinged, and one silent for twice that long
    is taken as lost: the room is left with a ``ConnectionClosedError`` (code 1006)
    reported through ``on_error``. None turns the pings off.
    """

    def __init__(
        self,
        *,
        server_url: str = "http://127.0.0.1:3000",
        settings: Settings | None = None,
        create_room_endpoint: str = "/create-room",
        join_room_endpoint: str = "/join-room",
        message_buffer_max_count: int = 50,
        message_buffer_max_duration: float = 60.0,
        verification_code_length: int = 6,
        join_timeout: float = 30.0,
        max_frame_size: int = 1_000_000,
        keepalive_interval: float | None = 20.0,
        **listeners: Callable[..., Any],
    ) -> None:
        super().__init__(CLIENT_EVENTS)
        self.add_listener_options(listeners, "ClientConnector")
        self.settings = settings or Settings()
        self.server_url = server_url.rstrip("/")
        self.create_room_endpoint = create_room_endpoint
        self.join_room_endpoint = join_room_endpoint
        self.message_buffer_max_count = message_buffer_max_count
        self.message_buffer_max_duration = message_buffer_max_duration
        self.verification_code_length = verification_code_length
        self.join_timeout = join_timeout
        self.max_frame_size = max_frame_size
        if keepalive_interval is not None and not keepalive_interval > 0:
            raise ValueError(
                "keepalive_interval must be more than 0 seconds or None, "
                f"not {keepalive_interval}"
            )
        self.keepalive_interval = keepalive_interval

        self._transport: Transport = self.settings.load_transport()
        self._suite: CipherSuite = self.settings.load_cipher_suite()
        self._serializer: Serializer = self.settings.load_serializer()
        self._identity: Identity | None = None
        self._identity_ready = anyio.Event()
        self._session: RoomSession | None = None
        self._connection: Connection | None = None
        self._checks: dict[str, DataCheck | None] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._send_lock = anyio.Lock()

    # Lifecycle.

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._task_group = await stack.enter_async_context(
                anyio.create_task_group()
            )
            self._spawn = self._task_group.start_soon
            self._task_group.start_soon(self._generate_identity)
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._exit_stack is not None and self._task_group is not None
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self.leave_room()
        self._task_group.cancel_scope.cancel()
        try:
            return await self._exit_stack.__aexit__(exc_type, exc, traceback)
        finally:
            self._task_group = None
            self._spawn = None

    async def _generate_identity(self) -> None:
        self._identity = await anyio.to_thread.run_sync(self._suite.generate_identity)
        self._identity_ready.set()

    async def _get_identity(self) -> Identity:
        await self._identity_ready.wait()
        return self._identity

    # State that the user reads.

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._session.state if self._session else ConnectionState.DISCONNECTED

    @property
    def room_code(self) -> str | None:
        """The code of the current room."""
        return self._session.room_code if self._session else None

    @property
    def user_id(self) -> str | None:
        """This client's user id in the current room."""
        return self._session.user_id if self._session else None

    @property
    def creator_id(self) -> str | None:
        """The user id of the current room's creator."""
        return self._session.creator_id if self._session else None

    @property
    def is_creator(self) -> bool:
        """Whether this client created the current room."""
        return self._session.is_creator if self._session else False

    @property
    def users(self) -> list[str]:
        """The ids of the room's members, in join order."""
        return list(self._session.users) if self._session else []

    @property
    def verified_users(self) -> set[str]:
        """The ids of the members this client knows to be verified."""
        return set(self._session.verified_users) if self._session else set()

    def get_verification_code(self, user_id: str) -> str | None:
        """Return the verification code for the key exchange with ``user_id``.

        A joiner shows the code for the creator's id to its user, who reads it to the
        creator; the creator gets one code per joiner. None until the exchange ran.
        """
        if self._session is None:
            return None
        peer = self._session.peers.get(user_id)
        return peer.verification_code if peer else None

    # Joining and leaving.

    async def create_room(
        self,
        *,
        public_data: Any = None,
        verify_public_data: DataCheck | None = None,
        private_data: Any = None,
        verify_private_data: DataCheck | None = None,
        limit: int | None = None,
    ) -> str:
        """Create a room on the relay and join it as its creator; return the room code.

        ``join_timeout`` bounds the create-room request, then the join.

        Raises:
            StateError: this client is already in a room.
            JoinTimeoutError: the relay sent no response to the create-room
                request, or did not admit the socket, within ``join_timeout``.
            JoinRejectedError: the relay responded to the request with an error.
            ConnectionClosedError: the relay could not be reached.
        """
        self._require_idle()
        url = self.server_url + self.create_room_endpoint
        if limit is not None:
            url += "?" + urlencode({"limit": limit})
        with anyio.move_on_after(self.join_timeout) as scope:
            response = await self._transport.http_get(url)
        if scope.cancelled_caught:
            raise JoinTimeoutError(
                f"the relay sent no response to the create-room request within "
                f"{self.join_timeout} s; check the server URL or raise join_timeout"
            )
        if response.status != 200:
            detail = response.body.decode("utf-8", "replace")[:200]
            raise JoinRejectedError(
                f"the relay refused to create a room (HTTP {response.status}): {detail}"
            )
        try:
            ticket = self._serializer.loads(response.body)
            room_code = ticket["roomCode"]
            secret = ticket["creatorSecret"]
        except (MessageError, KeyError, TypeError) as exc:
            raise JoinRejectedError(
                f"the relay sent an invalid create-room response: {exc}"
            ) from None
        if not isinstance(room_code, str) or not isinstance(secret, str):
            raise JoinRejectedError(
                "the relay sent an invalid room code or creator secret"
            )
        await self._join(
            room_code,
            secret,
            RoomOptions(public_data, private_data),
            verify_public_data,
            verify_private_data,
        )
        return room_code

    async def join_room(
        self,
        room_code: str,
        *,
        public_data: Any = None,
        verify_public_data: DataCheck | None = None,
        private_data: Any = None,
        verify_private_data: DataCheck | None = None,
    ) -> None:
        """Join a room as a joiner; returns once the relay admitted the socket.

        Verification continues in the background: watch ``on_connection`` for
        ``CONNECTED``, and show the user :meth:`get_verification_code` for the
        creator's id so they can read it to the creator.

        Raises:
            RoomNotFoundError: no room has this code.
            RoomFullError: the room has its maximum number of users.
            JoinTimeoutError: the relay did not admit the socket within
                ``join_timeout``.
            JoinRejectedError: the relay refused the join for another reason.
        """
        if not isinstance(room_code, str):
            raise TypeError(f"room_code must be a str, not {type(room_code).__name__}")
        self._require_idle()
        await self._join(
            room_code.strip().upper(),
            None,
            RoomOptions(public_data, private_data),
            verify_public_data,
            verify_private_data,
        )

    def _require_idle(self) -> None:
        if self._task_group is None:
            raise StateError("use the client in an 'async with' block before joining")
        if self._session is not None:
            raise StateError(
                f"already in room {self._session.room_code}: "
                "leave it before joining another"
            )

    async def _join(
        self,
        room_code: str,
        creator_secret: str | None,
        options: RoomOptions,
        verify_public_data: DataCheck | None,
        verify_private_data: DataCheck | None,
    ) -> None:
        assert self._task_group is not None
        identity = await self._get_identity()
        session = RoomSession(
            suite=self._suite,
            serializer=self._serializer,
            identity=identity,
            room_code=room_code,
            options=options,
            room_key=self._suite.new_room_key() if creator_secret else None,
            verification_code_length=self.verification_code_length,
            message_buffer_max_count=self.message_buffer_max_count,
            message_buffer_max_duration=self.message_buffer_max_duration,
        )
        self._session = session
        self._checks = {"public": verify_public_data, "private": verify_private_data}
        self.emit("on_connection", ConnectionState.CONNECTING)

        query = {"code": room_code}
        if creator_secret:
            query["creator"] = creator_secret
        url = self.server_url + self.join_room_endpoint + "?" + urlencode(query)
        joined = anyio.Event()
        failure: list[BaseException] = []
        scope = anyio.CancelScope()
        self._task_group.start_soon(
            self._run_session, session, url, joined, failure, scope
        )
        with anyio.move_on_after(self.join_timeout):
            await joined.wait()
        if not joined.is_set():
            scope.cancel()
            raise JoinTimeoutError(
                f"the relay did not admit the socket within {self.join_timeout} s; "
                "check the server URL or raise join_timeout"
            )
        if failure:
            raise failure[0]

    async def _run_session(
        self,
        session: RoomSession,
        url: str,
        joined: anyio.Event,
        failure: list[BaseException],
        scope: anyio.CancelScope,
    ) -> None:
        reason = "connection closed"
        try:
            with scope:
                await self._read_frames(session, url, joined)
        except ConnectionClosedError as exc:
            reason = exc.reason or f"closed with code {exc.code}"
            if not joined.is_set():
                error_type = _REFUSALS.get(exc.reason, JoinRejectedError)
                # 1006 means no close frame: the connection or its handshake
                # failed or timed out, or the relay rejected the upgrade.
                if exc.code == 1006:
                    message = f"cannot join the room: {reason}"
                else:
                    message = f"the relay rejected the join: {reason}"
                failure.append(error_type(message))
            elif exc.code not in (1000, 1001):
                self.emit("on_error", exc)
        except _LeaveRoom as exc:
            reason = exc.reason
        except ValueError as exc:
            # The transport rejects a URL it cannot connect to, such as ftp://.
            reason = str(exc)
            if joined.is_set():
                self.emit("on_error", exc)
            else:
                failure.append(exc)
        finally:
            self._connection = None
            joined.set()
            if self._session is session:
                self._session = None
                if session.user_id is not None:
                    info = {"roomCode": session.room_code, "reason": reason}
                    self.emit("on_room_leave", info)
                self.emit("on_connection", ConnectionState.DISCONNECTED)

    async def _read_frames(
        self, session: RoomSession, url: str, joined: anyio.Event
    ) -> None:
        async with self._transport.connect(url) as connection:
            self._connection = connection
            silent: list[ConnectionClosedError] = []
            keepalive = anyio.CancelScope()
            with anyio.CancelScope() as reading:
                if (
                    self.keepalive_interval is not None
                    and self._task_group is not None
                    and isinstance(connection, KeepaliveConnection)
                ):
                    self._task_group.start_soon(
                        self._keep_alive, connection, reading, keepalive, silent
                    )
                try:
                    await self._receive_frames(session, connection, joined)
                finally:
                    keepalive.cancel()
            if silent:
                raise silent[0]

    async def _keep_alive(
        self,
        connection: KeepaliveConnection,
        reading: anyio.CancelScope,
        scope: anyio.CancelScope,
        silent: list[ConnectionClosedError],
    ) -> None:
        """Ping a quiet relay, and stop reading from one silent for too long."""
        assert self.keepalive_interval is not None
        interval = self.keepalive_interval
        timeout = 2 * interval
        pinged_at = -math.inf
        with scope:
            while True:
                last_activity = connection.last_activity
                idle = time.monotonic() - last_activity
                if idle >= timeout:
                    logger.warning("no frame from the relay for %g s", timeout)
                    silent.append(
                        ConnectionClosedError(
                            1006, f"no frame from the relay for {timeout:g} s"
                        )
                    )
                    reading.cancel()
                    return
                if pinged_at > last_activity:
                    # Waiting for the pong.
                    await anyio.sleep(timeout - idle)
                elif idle >= interval:
                    pinged_at = time.monotonic()
                    # A relay that stopped reading can block the ping too.
                    with anyio.move_on_after(timeout - idle):
                        try:
                            await connection.ping()
                        except ConnectionClosedError:
                            return
                else:
                    await anyio.sleep(interval - idle)

    async def _receive_frames(
        self, session: RoomSession, connection: Connection, joined: anyio.Event
    ) -> None:
        """Read and handle frames until the connection closes."""
        while True:
            message = await connection.receive()
            try:
                frame = self._decode_frame(message)
            except RoupnError as exc:
                self.emit("on_error", exc)
                continue
            try:
                await self._handle(session.receive(frame))
            except (_LeaveRoom, ConnectionClosedError):
                raise
            except RoupnError as exc:
                self.emit("on_error", exc)
            except Exception as exc:
                # A hostile peer must not end the session through a bug here.
                logger.exception("unexpected error handling a frame")
                self.emit("on_error", ProtocolError(f"invalid frame: {exc!r}"))
            if session.user_id is not None and not joined.is_set():
                joined.set()

    def _decode_frame(self, message: str | bytes) -> Frame:
        if self._serializer.binary:
            if not isinstance(message, bytes):
                raise FrameError("the relay sent a text frame to a binary-frame client")
            return decode_binary(message)
        if not isinstance(message, str):
            raise FrameError(
                "the relay sent a binary frame: does it use the same serializer?"
            )
        return decode_text(message)

    async def _handle(self, actions: list[Any]) -> None:
        session = self._session
        for action in actions:
            if isinstance(action, SendFrame):
                await self._send(action.frame)
            elif isinstance(action, Notice):
                if action.event == "on_message" and await self._intercept_message(
                    action.args[0]
                ):
                    continue
                self.emit(action.event, *action.args)
            elif isinstance(action, CheckData):
                accepted = await self._check(action)
                if session is not None:
                    await self._handle(
                        session.data_checked(action.kind, action.user_id, accepted)
                    )
            elif isinstance(action, Leave):
                raise _LeaveRoom(action.reason)

    async def _check(self, action: CheckData) -> bool:
        check = self._checks.get(action.kind)
        if check is None:
            return True
        try:
            result = check({"data": action.data, "userId": action.user_id})
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            logger.exception(
                "verify_%s_data raised; treating it as a rejection", action.kind
            )
            return False
        return bool(result)

    async def _send(self, frame: Frame) -> None:
        connection = self._connection
        if connection is None:
            raise StateError("not connected to a room")
        text = encode_binary(frame) if self._serializer.binary else encode_text(frame)
        if len(text) > self.max_frame_size:
            raise MessageError(
                f"the message is {len(text)} bytes once encrypted and encoded, over "
                f"the limit of {self.max_frame_size}: send smaller messages"
            )
        async with self._send_lock:
            await connection.send(text)

    async def _intercept_message(self, message: Message) -> bool:
        """Handle a message before listeners see it; return True to consume it."""
        return False

    async def _send_system_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a room message of a reserved type; return it as sent."""
        frame, stamped = self._current().seal_system_message(message)
        await self._send(frame.frame)
        return stamped

    async def leave_room(self) -> None:
        """Leave the current room; does nothing when not in a room."""
        connection = self._connection
        if connection is None or self._session is None:
            return
        self._session.state = ConnectionState.DISCONNECTING
        self.emit("on_connection", ConnectionState.DISCONNECTING)
        await connection.close(1000, "left")

    # Messages.

    def _current(self) -> RoomSession:
        if self._session is None:
            raise StateError("not in a room: create or join one first")
        return self._session

    async def message_room(self, data: dict[str, Any]) -> None:
        """Send an encrypted message to every verified member of the room.

        Raises:
            StateError: this client is not ``CONNECTED``.
        """
        await self._send(self._current().seal_room_message(data).frame)

    async def message_user(self, user_id: str, data: dict[str, Any]) -> None:
        """Send an encrypted, signed message to one member.

        Raises:
            StateError: no keys were exchanged with that member.
        """
        await self._send(self._current().seal_direct_message(user_id, data).frame)

    async def verify_user(self, user_id: str, code: str) -> bool:
        """Admit a joiner if ``code`` matches this creator's code for them.

        Returns False, and sends nothing, when the code does not match.

        Raises:
            StateError: this client is not the creator, or no code exists yet.
        """
        matched, actions = self._current().verify_user(user_id, code)
        await self._handle(actions)
        return matched

    async def kick_user(self, user_id: str) -> None:
        """Remove a member from the room; creator only."""
        await self._send(self._current().kick(user_id).frame)

    async def close_room(self) -> None:
        """Remove every member and the room; creator only."""
        await self._send(self._current().close().frame)


class _LeaveRoom(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def create_client_connector(**options: Any) -> ClientConnector:
    """Make a client; see :class:`ClientConnector` for the options."""
    return ClientConnector(**options)
