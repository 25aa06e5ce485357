"""The relay server connector: the relay state machine driven over a transport."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import anyio
import anyio.abc

from .backplane import Backplane, BackplaneOptions, RoomLink
from .errors import (
    BackplaneError,
    ConnectionClosedError,
    RoomLimitError,
    RoomNotFoundError,
    StateError,
)
from .events import EventEmitter
from .interfaces import (
    Connection,
    HttpRequest,
    HttpResponse,
    KeepaliveConnection,
    Serializer,
)
from .limits import ConnectionLimiter, RateLimiter, client_host
from .metrics import RelayMetrics, make_relay_metrics
from .operations import (
    OperationsApplication,
    health_response,
    listen_function,
    metrics_response,
)
from .outbox import CLOSE_TIMEOUT, DEFAULT_MAX_SEND_BUFFER, Outbox
from .plugins import BackendKind, get_registry
from .relay import (
    POLICY_VIOLATION,
    Action,
    Broadcast,
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


_CAN_PING: dict[type, bool] = {}


def can_ping(connection: Connection) -> bool:
    """Return whether ``connection`` is a :class:`KeepaliveConnection`.

    The result is cached per class, because checking a runtime protocol reads
    every one of its attributes.
    """
    kind = type(connection)
    result = _CAN_PING.get(kind)
    if result is None:
        result = _CAN_PING[kind] = isinstance(connection, KeepaliveConnection)
    return result


@dataclass(slots=True)
class _Peer:
    connection: Connection
    outbox: Outbox
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

    Limits against abuse, each None to turn it off (times in seconds, client
    addresses without their port):

    - ``max_rooms``: rooms at once; create-room gets HTTP 429 beyond it.
    - ``max_connections``, ``max_connections_per_address``: open room sockets in
      total and per client address; one more is closed with 1013.
    - ``room_creations_per_minute``, ``join_attempts_per_minute``: per client
      address; beyond them create-room gets HTTP 429 and a join closes with 1008
      ``rate_limited``.
    - ``verification_timeout``: a joiner not verified in time is closed with 1008
      ``verification_timeout``.
    - ``idle_timeout``: a socket that sends nothing for this long is closed with
      1008 ``idle_timeout``. Over WebSockets, the relay pings a socket that has
      been quiet for half of it, and every frame counts, pongs included, so a
      member that only listens stays. Over transports that cannot ping (the
      in-process memory transport), only messages count.
    - ``max_pending_per_room``: joiners waiting for verification in one room; one
      more is closed with 1013 ``too_many_pending``.
    - ``allowed_origins``: the ``Origin`` values browsers may connect from; a
      create-room request or upgrade with another ``Origin`` gets HTTP 403.
      Requests without the header (clients other than browsers) pass.
    - ``max_send_buffer``: bytes the relay holds for one member that reads too
      slowly (frames queued plus the write in progress, after the operating
      system's socket buffer is full); a member that falls further behind is
      closed with 1013 ``too_slow``, and the others keep their rate. The
      relay's memory for send buffers is at most about ``max_connections``
      times this.

    ``limits_clock`` returns the monotonic time in seconds that the rate limits
    count with; tests replace it.

    With ``listen=False`` the connector opens no listener of its own, and
    ``host``, ``port`` and the transport are unused: another server, such as
    the ASGI application in :mod:`roupn.asgi`, calls :meth:`handle_http`,
    :meth:`check_upgrade` and :meth:`handle_socket` while the ``async with``
    block runs.

    Operations: ``GET /healthz`` (``health_endpoint``) returns 200 while the relay
    serves and 503 once :meth:`begin_shutdown` was called. ``GET /metrics``
    (``metrics_endpoint``) returns Prometheus metrics when ``metrics`` is on: True
    requires the ``metrics`` extra, None turns them on if it is installed, and
    False turns them off. With ``metrics_port``, metrics move to a port of their
    own (on ``metrics_host``, by default ``host``), which serves the health
    endpoint too. ``reuse_port`` lets several processes listen on one port
    (Linux ``SO_REUSEPORT``), for transports that support it.

    ``backplane`` chooses where rooms live: ``"memory"`` (the default) keeps them
    in this process, and ``BackplaneOptions(name="redis", url=...)`` shares them
    with every relay process on the same Redis server. With a shared backplane,
    the room methods and listeners of each process see the rooms in which that
    process has members, and rooms are created with :meth:`create_room_async`.
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
        max_send_buffer: int | None = DEFAULT_MAX_SEND_BUFFER,
        cors_origin: str | None = "*",
        max_rooms: int | None = 10_000,
        max_connections: int | None = 10_000,
        max_connections_per_address: int | None = 100,
        room_creations_per_minute: float | None = 30,
        join_attempts_per_minute: float | None = 60,
        verification_timeout: float | None = 300.0,
        idle_timeout: float | None = 600.0,
        max_pending_per_room: int | None = 10,
        allowed_origins: list[str] | None = None,
        limits_clock: Callable[[], float] = time.monotonic,
        backplane: str | BackplaneOptions = "memory",
        listen: bool = True,
        health_endpoint: str = "/healthz",
        metrics_endpoint: str = "/metrics",
        metrics: bool | None = None,
        metrics_host: str | None = None,
        metrics_port: int | None = None,
        reuse_port: bool = False,
        **listeners: Callable[..., Any],
    ) -> None:
        super().__init__(SERVER_EVENTS)
        self.add_listener_options(listeners, "ServerConnector")
        self.settings = settings or Settings()
        self.host = host
        self.port = port
        self.listen = listen
        self.create_room_endpoint = create_room_endpoint
        self.join_room_endpoint = join_room_endpoint
        if max_send_buffer is not None and max_send_buffer < 1:
            raise ValueError(
                "max_send_buffer must be at least 1 byte or None, "
                f"not {max_send_buffer}"
            )
        self.max_send_buffer = max_send_buffer
        self.cors_origin = cors_origin
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(
                f"idle_timeout must be more than 0 seconds or None, not {idle_timeout}"
            )
        self.idle_timeout = idle_timeout
        self.allowed_origins = (
            frozenset(allowed_origins) if allowed_origins is not None else None
        )
        self._rejection_logs = RateLimiter(10, clock=limits_clock)
        self._connections = ConnectionLimiter(
            max_connections, max_connections_per_address
        )
        self._room_creations = (
            RateLimiter(room_creations_per_minute, clock=limits_clock)
            if room_creations_per_minute is not None
            else None
        )
        self._join_attempts = (
            RateLimiter(join_attempts_per_minute, clock=limits_clock)
            if join_attempts_per_minute is not None
            else None
        )

        serializer: Serializer | None = None
        if serialize is None or deserialize is None or content_type is None:
            serializer = self.settings.load_serializer()
        self.content_type = content_type or (
            serializer.content_type if serializer else ""
        )
        self.serialize = serialize or (serializer.dumps if serializer else None)
        self.deserialize = deserialize or (serializer.loads if serializer else None)
        assert self.serialize is not None and self.deserialize is not None

        if isinstance(backplane, str):
            backplane = BackplaneOptions(name=backplane)
        self.backplane_options = backplane
        self._backplane: Backplane = get_registry().load(
            BackendKind.BACKPLANE, backplane.name
        )
        self.state: RelayState = self._backplane.create_state(
            backplane,
            dumps=self.serialize,
            loads=self.deserialize,
            max_users_per_room=max_users_per_room,
            unclaimed_room_timeout=unclaimed_room_timeout,
            max_frame_size=max_frame_size,
            max_rooms=max_rooms,
            max_pending_per_room=max_pending_per_room,
            verification_timeout=verification_timeout,
            binary=serializer.binary if serializer else False,
        )
        self.health_endpoint = health_endpoint
        self.metrics_endpoint = metrics_endpoint
        self.metrics_host = host if metrics_host is None else metrics_host
        self.metrics_port = metrics_port
        self.metrics_url: str | None = None
        self.reuse_port = reuse_port
        self.shutting_down = False
        self.metrics: RelayMetrics = make_relay_metrics(
            metrics,
            open_connections=lambda: self._connections.total,
            room_sizes=lambda: (
                len(room.members) for room in self.state.rooms.values()
            ),
        )
        self.url: str | None = None
        self._peers: dict[str, _Peer] = {}
        self._room_link: RoomLink | None = None
        self._wait_writable: Callable[[], Awaitable[None]] | None = None
        self._last_frame: str | bytes | None = None
        self._last_encoded: dict[str, bytes] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None

    # Lifecycle.

    async def __aenter__(self) -> Self:
        transport = self.settings.load_transport() if self.listen else None
        async with AsyncExitStack() as stack:
            # Entered first, so that it closes after every socket has left.
            self._room_link = await stack.enter_async_context(
                self._backplane.connect(
                    self.state,
                    self.backplane_options,
                    self._run,
                    self.metrics.observe_backplane_latency,
                )
            )
            self._wait_writable = self._room_link.wait_writable
            self._task_group = await stack.enter_async_context(
                anyio.create_task_group()
            )
            self._spawn = self._task_group.start_soon
            self._task_group.start_soon(self._expire_rooms)
            if transport is not None:
                self.url = await self._task_group.start(
                    listen_function(transport, self.reuse_port),
                    self,
                    self.host,
                    self.port,
                )
                logger.info("relay listening on %s", self.url)
                if self.metrics_port is not None:
                    self.metrics_url = await self._task_group.start(
                        transport.serve,
                        OperationsApplication(self),
                        self.metrics_host,
                        self.metrics_port,
                    )
                    logger.info("metrics and health on %s", self.metrics_url)
            else:
                logger.info("relay started without a listener")
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._exit_stack is not None and self._task_group is not None
        self.shutting_down = True
        self._task_group.cancel_scope.cancel()
        try:
            return await self._exit_stack.__aexit__(exc_type, exc, traceback)
        finally:
            self._task_group = None
            self._spawn = None
            logger.info("relay stopped")

    def begin_shutdown(self) -> None:
        """Make the health endpoint return 503 while the relay keeps serving.

        Load balancers then stop sending new clients before the relay stops.
        """
        if not self.shutting_down:
            logger.info("relay shutting down: the health endpoint now returns 503")
        self.shutting_down = True

    async def serve_forever(self) -> None:
        """Serve until cancelled (for example by Ctrl-C)."""
        await anyio.sleep_forever()

    async def _expire_rooms(self) -> None:
        timeouts = [self.state.unclaimed_room_timeout]
        if self.state.verification_timeout is not None:
            timeouts.append(self.state.verification_timeout)
        period = max(0.05, min(min(timeouts) / 4, 5.0))
        while True:
            await anyio.sleep(period)
            self._run(self.state.expire())

    # Actions from the state machine.

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if type(action) is Broadcast:
                for user_id in action.user_ids:
                    self._deliver(user_id, action.frame)
            elif type(action) is Send:
                self._deliver(action.user_id, action.frame)
            elif isinstance(action, Close):
                self._close(action.user_id, action.code, action.reason)
            elif isinstance(action, Notice):
                self.emit(action.event, *action.args)

    def _deliver(self, user_id: str, frame: str | bytes) -> None:
        peer = self._peers.get(user_id)
        if peer is None:
            return
        # The encodings of the last frame are kept, so a frame that goes to many
        # members is encoded once per wire format.
        if frame is not self._last_frame:
            self._last_frame = frame
            self._last_encoded = {}
        if peer.outbox.put(frame, self._last_encoded):
            self.metrics.frames_sent(1, len(frame))
        else:
            self._drop_slow(user_id, peer.outbox)

    def _drop_slow(self, user_id: str, outbox: Outbox) -> None:
        self.metrics.slow_consumer_dropped()
        logger.warning(
            "closing user %s: it reads too slowly, %d bytes wait to be sent to it "
            "and the next frame would exceed the limit of %d bytes",
            user_id,
            outbox.buffered_bytes,
            outbox.max_bytes,
        )
        self._run(self.state.leave(user_id, "too_slow", TRY_AGAIN_LATER))

    def _close(self, user_id: str, code: int, reason: str) -> None:
        peer = self._peers.pop(user_id, None)
        if peer is None:
            return
        self.metrics.socket_closed(reason)
        if not peer.outbox.overflowed:
            peer.outbox.close(code, reason)
            return
        # The buffer is full of frames no one reads, so drop them and close now.
        peer.outbox.discard()
        peer.cancel_scope.cancel()
        assert self._task_group is not None
        self._task_group.start_soon(peer.connection.close, code, reason)

    def _log_rejection(self, address: str, message: str, *args: Any) -> None:
        """Log a rejected request at WARNING, or at DEBUG once an address repeats.

        Each client address gets about ten WARNING lines per minute, so a flood
        of rejected requests cannot flood the log too.
        """
        if self._rejection_logs.allow(client_host(address)):
            logger.warning("rejected " + message, *args)
        else:
            logger.debug("rejected " + message, *args)

    # The relay application that the transport serves.

    def _json_response(
        self, status: int, message: Any, origin: str | None = None
    ) -> HttpResponse:
        assert self.serialize is not None
        headers = [("Content-Type", self.content_type)]
        if self.allowed_origins is not None:
            # Browsers accept one origin or "*", so the allowed one is echoed.
            if origin is not None and origin in self.allowed_origins:
                headers.append(("Access-Control-Allow-Origin", origin))
            headers.append(("Vary", "Origin"))
        elif self.cors_origin:
            headers.append(("Access-Control-Allow-Origin", self.cors_origin))
        return HttpResponse(status, self.serialize(message), headers)

    def _reject_origin(self, request: HttpRequest) -> HttpResponse | None:
        """Return a 403 response if the request's ``Origin`` is not allowed."""
        origin = request.header("Origin")
        if self.allowed_origins is None or origin is None:
            return None
        if origin in self.allowed_origins:
            return None
        self.metrics.rejected("origin")
        self._log_rejection(
            request.remote_address,
            "%s from %s: origin %r is not allowed",
            request.path,
            request.remote_address,
            origin,
        )
        return self._json_response(403, {"error": f"origin {origin!r} not allowed"})

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        if request.path == self.health_endpoint:
            return health_response(request, self.shutting_down)
        if request.path == self.metrics_endpoint and self.metrics_port is None:
            return metrics_response(request, self.metrics)
        if request.path != self.create_room_endpoint:
            return self._json_response(404, {"error": f"no endpoint at {request.path}"})
        if request.method != "GET":
            return self._json_response(405, {"error": "use GET to create a room"})
        rejection = self._reject_origin(request)
        if rejection is not None:
            return rejection

        origin = request.header("Origin")
        address = request.remote_address
        if self._room_creations is not None and not self._room_creations.allow(
            client_host(address)
        ):
            self.metrics.rejected("rate_limited")
            self._log_rejection(address, "create-room from %s: rate_limited", address)
            message = "too many rooms created from this address; try again later"
            return self._json_response(429, {"error": message}, origin)

        limit: int | None = None
        raw_limit = request.query.get("limit")
        if raw_limit:
            try:
                limit = int(raw_limit)
                if limit < 1:
                    raise ValueError
            except ValueError:
                self.metrics.rejected("invalid_limit")
                message = (
                    f"invalid limit {raw_limit!r}: use a whole number of at least 1"
                )
                return self._json_response(400, {"error": message}, origin)

        try:
            ticket = await self.create_room_async(limit)
        except RoomLimitError as exc:
            self.metrics.rejected("too_many_rooms")
            self._log_rejection(address, "create-room from %s: %s", address, exc)
            return self._json_response(429, {"error": str(exc)}, origin)
        except BackplaneError as exc:
            self.metrics.rejected("backplane_unavailable")
            logger.error("create-room from %s failed: %s", address, exc)
            message = "the relay cannot reach its room store; try again later"
            return self._json_response(503, {"error": message}, origin)
        return self._json_response(200, ticket.to_message(), origin)

    def check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        if request.path != self.join_room_endpoint:
            return self._json_response(404, {"error": f"no endpoint at {request.path}"})
        return self._reject_origin(request)

    async def handle_socket(self, request: HttpRequest, connection: Connection) -> None:
        await self.join_room(
            request.query.get("code"), connection, request.query.get("creator")
        )

    # Public methods.

    def create_room(self, limit: int | None = None) -> RoomTicket:
        """Make a room; return the creator's secret and id and the room code.

        Only the ``memory`` backplane creates rooms without waiting. Use
        :meth:`create_room_async` with any backplane.

        Raises:
            RoomLimitError: the relay already has ``max_rooms`` rooms.
            RoomError: the backplane shares rooms between processes.
        """
        ticket = self.state.create_room(limit)
        self.metrics.room_created()
        return ticket

    async def create_room_async(self, limit: int | None = None) -> RoomTicket:
        """Create a room through the backplane and return the creator's ticket.

        Raises:
            RoomLimitError: the relay (or the cluster) already has ``max_rooms``
                rooms.
            BackplaneError: the backplane's store cannot be reached.
            StateError: the relay is not running.
        """
        if self._room_link is None:
            raise StateError("the relay is not running: use it in an async with block")
        ticket = await self._room_link.create_room(limit)
        self.metrics.room_created()
        return ticket

    async def join_room(
        self,
        room_code: str | None,
        connection: Connection,
        creator_secret: str | None = None,
    ) -> None:
        """Serve ``connection`` as a member of a room until it closes.

        A refused join closes the connection with a close code (1008, or 1013 for
        the connection limits and ``too_many_pending``) and the reason.
        """
        address = connection.remote_address
        host = client_host(address)
        over_limit = self._connections.open(host)
        if over_limit is not None:
            self.metrics.rejected(over_limit)
            self._log_rejection(address, "join from %s: %s", address, over_limit)
            await connection.close(TRY_AGAIN_LATER, over_limit)
            return
        try:
            if self._join_attempts is not None and not self._join_attempts.allow(host):
                self.metrics.rejected("rate_limited")
                self._log_rejection(address, "join from %s: rate_limited", address)
                await connection.close(POLICY_VIOLATION, "rate_limited")
                return
            await self._serve_member(room_code, connection, creator_secret)
        finally:
            self._connections.release(host)

    async def _serve_member(
        self,
        room_code: str | None,
        connection: Connection,
        creator_secret: str | None,
    ) -> None:
        outbox = Outbox(connection, self.max_send_buffer)
        peer = _Peer(connection, outbox, anyio.CancelScope())

        def admit(user_id: str) -> None:
            self._peers[user_id] = peer

        assert self._room_link is not None
        joined = await self._room_link.join(room_code, creator_secret, admit)
        if isinstance(joined, JoinRefused):
            outbox.discard()
            self.metrics.rejected(joined.reason)
            address = connection.remote_address
            self._log_rejection(address, "join from %s: %s", address, joined.reason)
            await connection.close(joined.code, joined.reason)
            return
        user_id, actions = joined
        self.metrics.user_joined()
        try:
            with peer.cancel_scope:
                self._run(actions)
                async with anyio.create_task_group() as group:
                    group.start_soon(self._write, outbox, group.cancel_scope)
                    if self.idle_timeout is not None and can_ping(connection):
                        keepalive = cast(KeepaliveConnection, connection)
                        group.start_soon(self._watch_idle, user_id, keepalive)
                    await self._read(user_id, connection)
                    group.cancel_scope.cancel()
        finally:
            # Ends the membership when the socket closed first; no-op after a kick.
            self._run(self.state.leave(user_id, reason="disconnected"))
            self._peers.pop(user_id, None)
            outbox.discard()

    async def _read(self, user_id: str, connection: Connection) -> None:
        # _watch_idle times out connections that can ping, so only the others
        # need a deadline here.
        idle_timeout = self.idle_timeout
        if idle_timeout is None or can_ping(connection):
            idle_timeout = math.inf
        # One deadline covers many messages, so that no timer is set per message.
        # When it passes, the socket is idle only if no message came since, and
        # otherwise a new deadline counts from the last message. Message times
        # come from time.monotonic, which is cheaper than anyio.current_time()
        # and only measures durations here.
        # NOTE: under a mock clock (trio's MockClock), a socket idles out only
        # after idle_timeout seconds of real time.
        last_message = time.monotonic()
        wait = idle_timeout
        while True:
            with anyio.move_on_after(wait):
                try:
                    while True:
                        message = await connection.receive()
                        last_message = time.monotonic()
                        if not self._handle(user_id, message):
                            return
                        if self._wait_writable is not None:
                            await self._wait_writable()
                except ConnectionClosedError as exc:
                    logger.debug("< user %s closed: %s", user_id, exc)
                    return
            wait = last_message + idle_timeout - time.monotonic()
            if wait <= 0:
                logger.info(
                    "closing user %s from %s: no message for %s s",
                    user_id,
                    connection.remote_address,
                    self.idle_timeout,
                )
                self._run(self.state.leave(user_id, "idle_timeout", POLICY_VIOLATION))
                return

    def _handle(self, user_id: str, message: str | bytes) -> bool:
        """Route one frame, and return False if its sender must stop being read."""
        self.metrics.frame_received(len(message))
        try:
            actions = self.state.receive(user_id, message)
        except Exception:
            logger.exception("< frame from user %s could not be handled", user_id)
            self._run(self.state.leave(user_id, "internal_error", INTERNAL_ERROR))
            return False
        self._run(actions)
        return True

    async def _watch_idle(self, user_id: str, connection: KeepaliveConnection) -> None:
        """Ping a member silent for half the idle timeout, and close it after all of it.

        Any frame from the member resets the time, so the pong of a member that
        only listens keeps it in the room.
        """
        assert self.idle_timeout is not None
        timeout = self.idle_timeout
        pinged_at = -math.inf
        while True:
            last_activity = connection.last_activity
            idle = time.monotonic() - last_activity
            if idle >= timeout:
                logger.info(
                    "closing user %s from %s: no frame for %s s",
                    user_id,
                    connection.remote_address,
                    timeout,
                )
                self._run(self.state.leave(user_id, "idle_timeout", POLICY_VIOLATION))
                return
            if pinged_at > last_activity:
                # Waiting for the pong.
                await anyio.sleep(timeout - idle)
            elif idle >= timeout / 2:
                pinged_at = time.monotonic()
                # A member that does not read can block the ping, so the wait for
                # it ends with the timeout too.
                with anyio.move_on_after(timeout - idle):
                    try:
                        await connection.ping()
                    except ConnectionClosedError as exc:
                        logger.debug("> ping to user %s failed: %s", user_id, exc)
                        return
            else:
                await anyio.sleep(timeout / 2 - idle)

    async def _write(self, outbox: Outbox, scope: anyio.CancelScope) -> None:
        await outbox.run()
        # The writer also stops when the member's close frame arrived. The reader
        # then still has to send the reply, so it gets time to finish on its own.
        # Cancelled at once, it sometimes lost that reply, and the member waited
        # for its close timeout.
        await anyio.sleep(CLOSE_TIMEOUT)
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
