"""A relay process's link to the Redis backplane: its tasks and its room calls.

Four tasks run while the link is open:

- the listener reads the room channels that this process subscribed to and
  applies each event to the replicas of :class:`~roupn.shared_relay.SharedRelayState`;
- the publisher sends the state's queued commands to Redis, in order, as
  pipelines of ``PUBLISH`` and script calls;
- the heartbeat refreshes this process's key, which expires after the node
  timeout;
- the reaper looks for processes whose heartbeat key expired and removes their
  members from their rooms, as if each of them had left.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import redis.exceptions

from roupn.backplane import AdmitUser, BackplaneOptions, RunActions
from roupn.errors import BackplaneError, RoomLimitError
from roupn.messages import CODE_ALPHABET
from roupn.relay import (
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    Action,
    JoinRefused,
    RoomTicket,
)
from roupn.shared_relay import (
    CloseRoom,
    Command,
    MemberRecord,
    PublishFrame,
    RemoveMember,
    RoomSnapshot,
    SharedRelayState,
    VerifyUser,
    decode_event,
    encode_frame_event,
)

from . import scripts

__all__ = ["RedisRoomLink"]

logger = logging.getLogger(__name__)

# Commands sent to Redis in one pipeline at most.
BATCH_SIZE = 256

# Queued commands above which readers of local sockets wait for the publisher.
HIGH_WATER = 4096

# Attempts at a free room code or user id before giving up.
ATTEMPTS = 8

# The characters and maximum length of a room code; any other code is not found,
# without a request to Redis.
CODE_CHARACTERS = frozenset(CODE_ALPHABET)
MAX_CODE_LENGTH = 64

# The reason in the ``left`` event of a member whose relay process died.
NODE_TIMEOUT_REASON = "relay_unavailable"

# The close code and reason of a join that Redis could not serve.
UNAVAILABLE = JoinRefused(TRY_AGAIN_LATER, "relay_unavailable")

# Errors of a lost or unreachable Redis server.
REDIS_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


@dataclass(slots=True)
class _Watch:
    """A room channel this process listens to, and the replica's loading state."""

    interest: int = 0
    subscribed: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    loaded: bool = False
    buffer: list[bytes] = field(default_factory=list)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisRoomLink:
    """Creates, joins and serves shared rooms through one Redis server.

    Args:
        client: a ``redis.asyncio.Redis`` client that returns bytes.
        state: the replicas that this process applies events to.
        options: the backplane options (key prefix, heartbeat, node timeout).
        run: runs actions that events produced, such as frames to local sockets.
    """

    def __init__(
        self,
        client: Any,
        state: SharedRelayState,
        options: BackplaneOptions,
        run: RunActions,
    ) -> None:
        self.client = client
        self.state = state
        self.options = options
        self.run = run
        self.prefix = options.key_prefix
        self.node_id = state.node_id
        self._pubsub: Any = client.pubsub()
        self._watches: dict[str, _Watch] = {}
        self._admitting: dict[str, tuple[AdmitUser, anyio.Event]] = {}
        self._subscription_lock = anyio.Lock()
        self._commands_ready = anyio.Event()
        self._writable = anyio.Event()
        self._writable.set()
        self._scripts: dict[str, str] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        state.notify = self._commands_ready.set
        self.wait_writable: Callable[[], Any] | None = self._wait_writable

    # Keys and channels.

    def _room_key(self, code: str) -> str:
        return f"{self.prefix}:room:{code}"

    def _members_key(self, code: str) -> str:
        return f"{self.prefix}:room:{code}:members"

    def _channel(self, code: str) -> str:
        return f"{self.prefix}:channel:{code}"

    def _node_key(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    @property
    def _rooms_key(self) -> str:
        return f"{self.prefix}:rooms"

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}:nodes"

    # Starting and stopping.

    async def prepare(self) -> None:
        """Load the scripts, send a first heartbeat and open the subscription.

        Raises:
            BackplaneError: Redis cannot be reached.
        """
        try:
            for name in ("CREATE", "JOIN", "LEAVE", "CLOSE", "VERIFY", "SNAPSHOT"):
                source = getattr(scripts, name)
                self._scripts[name] = _text(await self.client.script_load(source))
            await self._beat()
            # A pub/sub connection needs a subscription before it can be read.
            await self._pubsub.subscribe(self._node_key(self.node_id))
        except (*REDIS_ERRORS, redis.exceptions.RedisError) as exc:
            raise BackplaneError(
                f"the Redis backplane cannot start: {exc}; check that Redis runs "
                "and that the Redis URL is right"
            ) from exc

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        """Start the link's tasks in ``task_group``; call :meth:`prepare` first."""
        self._task_group = task_group
        task_group.start_soon(self._listen)
        task_group.start_soon(self._publish)
        task_group.start_soon(self._heartbeat)
        task_group.start_soon(self._reap_forever)
        logger.info("= relay node %s joined the Redis backplane", self.node_id)

    async def stop(self) -> None:
        """Remove this process's members from their rooms and its heartbeat."""
        node_members = f"{self._node_key(self.node_id)}:members"
        with anyio.move_on_after(self.options.node_timeout, shield=True):
            try:
                # Commands queued by sockets that closed during shutdown go first.
                await self._send_commands()
                await self._remove_node_members(self.node_id, "relay_stopped")
                await self.client.delete(self._node_key(self.node_id), node_members)
                await self.client.srem(self._nodes_key, self.node_id)
            except REDIS_ERRORS as exc:
                # The other relays remove the members after the node timeout.
                logger.error("= leaving the Redis backplane failed: %s", exc)
        with anyio.move_on_after(1, shield=True), contextlib.suppress(*REDIS_ERRORS):
            await self._pubsub.aclose()
        logger.info("= relay node %s left the Redis backplane", self.node_id)

    # Creating and joining rooms.

    async def create_room(self, limit: int | None) -> RoomTicket:
        """Make a room in Redis and return the creator's ticket.

        Raises:
            ValueError: ``limit`` is less than 1.
            RoomLimitError: the cluster already has ``max_rooms`` rooms.
        """
        state = self.state
        if limit is not None and limit < 1:
            raise ValueError(f"room limit must be at least 1, not {limit}")
        max_users = min(limit or state.max_users_per_room, state.max_users_per_room)
        secret = str(uuid.uuid4())
        creator_id = str(uuid.uuid4())
        for _ in range(ATTEMPTS):
            code = "".join(
                secrets.choice(CODE_ALPHABET) for _ in range(state.room_code_length)
            )
            result = _text(
                await self.client.evalsha(
                    self._scripts["CREATE"],
                    2,
                    self._rooms_key,
                    self._room_key(code),
                    code,
                    creator_id,
                    _hash_secret(secret),
                    max_users,
                    repr(time.time()),
                    int(state.unclaimed_room_timeout * 1000),
                    state.max_rooms or 0,
                )
            )
            if result == "ok":
                logger.info("= room created (limit %d)", max_users)
                return RoomTicket(secret, code, creator_id)
            if result == "room_limit":
                logger.warning("= room rejected: the cluster has its maximum of rooms")
                raise RoomLimitError(
                    f"the relay already has its maximum of {state.max_rooms} rooms; "
                    "try again later"
                )
        raise BackplaneError(
            f"no free room code found in {ATTEMPTS} attempts; raise the room code "
            "length or remove rooms"
        )

    async def join(
        self, room_code: str | None, creator_secret: str | None, admit: AdmitUser
    ) -> tuple[str, list[Action]] | JoinRefused:
        """Admit a socket to a shared room; see :class:`roupn.backplane.RoomLink`."""
        if not room_code:
            return JoinRefused(POLICY_VIOLATION, "missing_room_code")
        if len(room_code) > MAX_CODE_LENGTH or not set(room_code) <= CODE_CHARACTERS:
            # Codes become parts of Redis keys, so only real codes get that far.
            return JoinRefused(POLICY_VIOLATION, "room_not_found")
        try:
            await self._watch(room_code)
        except (*REDIS_ERRORS, TimeoutError) as exc:
            logger.error("= loading a room from Redis failed: %s", exc)
            self._unwatch(room_code)
            return UNAVAILABLE
        try:
            if room_code not in self.state.rooms:
                return JoinRefused(POLICY_VIOLATION, "room_not_found")
            for _ in range(ATTEMPTS):
                result = await self._try_join(room_code, creator_secret, admit)
                if result is not None:
                    return result
            raise BackplaneError(f"no free user id found in {ATTEMPTS} attempts")
        except REDIS_ERRORS as exc:
            logger.error("= joining a room in Redis failed: %s", exc)
            return UNAVAILABLE
        finally:
            self._unwatch(room_code)

    async def _try_join(
        self, room_code: str, creator_secret: str | None, admit: AdmitUser
    ) -> tuple[str, list[Action]] | JoinRefused | None:
        room = self.state.rooms[room_code]
        user_id = room.creator_id if creator_secret else str(uuid.uuid4())
        done = anyio.Event()
        self._admitting[user_id] = (admit, done)
        self.state.begin_join(room_code, user_id)
        try:
            status, detail = await self.client.evalsha(
                self._scripts["JOIN"],
                4,
                self._room_key(room_code),
                self._members_key(room_code),
                self._rooms_key,
                f"{self._node_key(self.node_id)}:members",
                room_code,
                user_id,
                _hash_secret(creator_secret) if creator_secret is not None else "",
                self.node_id,
                repr(time.time()),
                self.state.max_pending_per_room or 0,
                self._channel(room_code),
            )
            status = _text(status)
            if status == "refused":
                reason = _text(detail)
                code = TRY_AGAIN_LATER if reason == "too_many_pending" else 1008
                return JoinRefused(code, reason)
            if status == "retry":
                return None
            # The listener calls admit when the join event arrives.
            with anyio.move_on_after(self.options.node_timeout):
                await done.wait()
            if not done.is_set():
                logger.error("= the join event of user %s did not arrive", user_id)
                self.state.outbox.append(
                    RemoveMember(room_code, user_id, "relay_unavailable", 1011)
                )
                self._commands_ready.set()
                return UNAVAILABLE
            return user_id, []
        finally:
            self._admitting.pop(user_id, None)
            self.state.end_join(user_id, admitted=done.is_set())

    # Room channels.

    async def _watch(self, room_code: str) -> None:
        """Subscribe to a room's channel and load its replica, once per room.

        Raises:
            TimeoutError: Redis did not confirm the subscription in time.
        """
        watch = self._watches.get(room_code)
        if watch is not None:
            watch.interest += 1
            await watch.ready.wait()
            if not watch.loaded:
                raise TimeoutError("the room's replica failed to load")
            return
        watch = self._watches[room_code] = _Watch(interest=1)
        try:
            async with self._subscription_lock:
                await self._pubsub.subscribe(self._channel(room_code))
            with anyio.fail_after(self.options.node_timeout):
                await watch.subscribed.wait()
            await self._load(room_code, watch)
        finally:
            watch.ready.set()

    async def _load(self, room_code: str, watch: _Watch) -> None:
        reply = await self.client.evalsha(
            self._scripts["SNAPSHOT"],
            2,
            self._room_key(room_code),
            self._members_key(room_code),
        )
        if reply:
            self.state.load(_snapshot(room_code, reply))
        watch.loaded = True
        buffered, watch.buffer = watch.buffer, []
        for data in buffered:
            self._apply(room_code, data)

    def _unwatch(self, room_code: str) -> None:
        watch = self._watches.get(room_code)
        if watch is None:
            return
        watch.interest -= 1
        self._release_if_unused(room_code)

    def _release_if_unused(self, room_code: str) -> None:
        watch = self._watches.get(room_code)
        if watch is None or watch.interest > 0:
            return
        if self.state.local_members(room_code):
            return
        del self._watches[room_code]
        self.state.forget(room_code)
        assert self._task_group is not None
        self._task_group.start_soon(self._unsubscribe, room_code)

    async def _unsubscribe(self, room_code: str) -> None:
        async with self._subscription_lock:
            if room_code not in self._watches:
                await self._pubsub.unsubscribe(self._channel(room_code))

    async def _listen(self) -> None:
        prefix = f"{self.prefix}:channel:"
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except REDIS_ERRORS as exc:
                logger.error("= the Redis subscription was lost: %s", exc)
                self._drop_all_rooms()
                await anyio.sleep(self.options.heartbeat_interval)
                continue
            if message is None:
                continue
            channel = _text(message["channel"])
            if not channel.startswith(prefix):
                continue
            room_code = channel[len(prefix) :]
            watch = self._watches.get(room_code)
            if watch is None:
                continue
            kind = message["type"]
            if kind == "subscribe":
                watch.subscribed.set()
            elif kind == "message":
                if watch.loaded:
                    self._apply(room_code, message["data"])
                else:
                    watch.buffer.append(message["data"])

    def _drop_all_rooms(self) -> None:
        """Close the local members of every room: their events may have been lost."""
        for room_code in list(self._watches):
            room = self.state.rooms.get(room_code)
            if room is not None:
                self.run(self.state.resync(room_code))
            watch = self._watches.pop(room_code)
            watch.subscribed.set()
            watch.ready.set()
            assert self._task_group is not None
            self._task_group.start_soon(self._unsubscribe, room_code)

    def _apply(self, room_code: str, data: bytes) -> None:
        try:
            event = decode_event(data, self.state.binary)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.error("= invalid event in a room channel: %s", exc)
            return
        try:
            actions = self.state.apply(room_code, event)
        except Exception:
            logger.exception("= an event of a room channel could not be applied")
            actions = self.state.resync(room_code)
        user_id = event.user_id
        if (
            event.kind == "join"
            and user_id in self._admitting
            and self.state.room_of(user_id) is not None
        ):
            # The socket is registered before the room joined frame is sent.
            admit, done = self._admitting[user_id]
            admit(user_id)
            done.set()
        self.run(actions)
        if event.kind in ("left", "closed") or room_code not in self.state.rooms:
            self._release_if_unused(room_code)

    # Commands.

    async def _wait_writable(self) -> None:
        if len(self.state.outbox) < HIGH_WATER:
            return
        self._writable = anyio.Event()
        await self._writable.wait()

    async def _publish(self) -> None:
        while True:
            await self._commands_ready.wait()
            self._commands_ready = anyio.Event()
            self.state.notify = self._commands_ready.set
            await self._send_commands()

    async def _send_commands(self) -> None:
        outbox = self.state.outbox
        while outbox:
            batch = [outbox.popleft() for _ in range(min(len(outbox), BATCH_SIZE))]
            pipe = self.client.pipeline(transaction=False)
            for command in batch:
                self._queue_command(pipe, command)
            try:
                results = await pipe.execute(raise_on_error=False)
            except REDIS_ERRORS as exc:
                # Keep the commands, in order, until Redis is back. Readers of
                # local sockets wait once HIGH_WATER commands are queued.
                logger.error("= sending commands to Redis failed: %s", exc)
                outbox.extendleft(reversed(batch))
                await anyio.sleep(self.options.heartbeat_interval)
                continue
            if len(outbox) < HIGH_WATER:
                self._writable.set()
            for command, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    await self._retry(command, result)

    def _queue_command(self, pipe: Any, command: Command) -> None:
        code = command.room_code
        if isinstance(command, PublishFrame):
            data = encode_frame_event(command.sender, command.receiver, command.frame)
            pipe.publish(self._channel(code), data)
        elif isinstance(command, VerifyUser):
            frame = command.frame
            pipe.evalsha(
                self._scripts["VERIFY"],
                2,
                self._room_key(code),
                self._members_key(code),
                command.user_id,
                frame.encode("utf-8") if isinstance(frame, str) else frame,
                self._channel(code),
            )
        elif isinstance(command, RemoveMember):
            self._queue_leave(pipe, code, command.user_id, command.reason, command.code)
        elif isinstance(command, CloseRoom):
            pipe.evalsha(
                self._scripts["CLOSE"],
                3,
                self._room_key(code),
                self._members_key(code),
                self._rooms_key,
                code,
                command.reason,
                self._channel(code),
                self.prefix,
            )

    def _queue_leave(
        self, pipe: Any, code: str, user_id: str, reason: str, close_code: int
    ) -> None:
        pipe.evalsha(
            self._scripts["LEAVE"],
            3,
            self._room_key(code),
            self._members_key(code),
            self._rooms_key,
            code,
            user_id,
            reason,
            close_code,
            self._channel(code),
            self.prefix,
        )

    async def _retry(self, command: Command, error: Exception) -> None:
        """Run a failed command again once, after reloading the scripts."""
        logger.warning("= Redis command failed (%s); retrying once", error)
        for name in list(self._scripts):
            source = getattr(scripts, name)
            self._scripts[name] = _text(await self.client.script_load(source))
        pipe = self.client.pipeline(transaction=False)
        self._queue_command(pipe, command)
        (result,) = await pipe.execute(raise_on_error=False)
        if isinstance(result, Exception):
            logger.error("= Redis command failed again: %s", result)

    # Heartbeats and dead processes.

    async def _beat(self, renew: bool = False) -> bool:
        """Set this process's heartbeat key; with ``renew``, only if it still exists.

        Returns False when ``renew`` found the key gone.
        """
        timeout_ms = int(self.options.node_timeout * 1000)
        key = self._node_key(self.node_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, repr(time.time()), px=timeout_ms, xx=renew)
        pipe.sadd(self._nodes_key, self.node_id)
        renewed, _ = await pipe.execute()
        return bool(renewed)

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.options.heartbeat_interval)
            try:
                if await self._beat(renew=True):
                    continue
                # Either this process paused for longer than the node timeout and
                # the others removed its members, or Redis lost its data. The
                # replicas cannot be trusted in both cases.
                logger.error(
                    "= the heartbeat key of relay node %s was gone; closing its "
                    "members and joining the backplane again",
                    self.node_id,
                )
                self._drop_all_rooms()
                await self._beat()
            except REDIS_ERRORS as exc:
                logger.error("= heartbeat to Redis failed: %s", exc)

    async def _reap_forever(self) -> None:
        while True:
            await anyio.sleep(self.options.heartbeat_interval)
            try:
                await self.reap()
            except REDIS_ERRORS as exc:
                logger.error("= looking for dead relay processes failed: %s", exc)

    async def reap(self) -> list[str]:
        """Remove the members of relay processes whose heartbeat expired.

        Returns the ids of the processes found dead. Several live processes may
        reap at once: a short lock per dead process keeps them from repeating
        the work, and removing a member twice does nothing the second time.
        """
        dead: list[str] = []
        for raw in await self.client.smembers(self._nodes_key):
            node_id = _text(raw)
            if node_id == self.node_id:
                continue
            if await self.client.exists(self._node_key(node_id)):
                continue
            lock = f"{self.prefix}:reaping:{node_id}"
            timeout_ms = int(self.options.node_timeout * 1000)
            if not await self.client.set(lock, self.node_id, nx=True, px=timeout_ms):
                continue
            logger.warning(
                "= relay node %s sent no heartbeat for %s s; removing its members",
                node_id,
                self.options.node_timeout,
            )
            await self._remove_node_members(node_id, NODE_TIMEOUT_REASON)
            await self.client.delete(f"{self._node_key(node_id)}:members")
            await self.client.srem(self._nodes_key, node_id)
            dead.append(node_id)
        return dead

    async def _remove_node_members(self, node_id: str, reason: str) -> None:
        entries = await self.client.smembers(f"{self._node_key(node_id)}:members")
        pipe = self.client.pipeline(transaction=False)
        for entry in entries:
            code, _, user_id = _text(entry).partition(" ")
            self._queue_leave(pipe, code, user_id, reason, 1001)
        if entries:
            await pipe.execute()


def _snapshot(room_code: str, reply: list[bytes]) -> RoomSnapshot:
    """Decode the SNAPSHOT script's reply."""
    creator, max_users, created, claimed, version = (_text(v) for v in reply[:5])
    members: list[MemberRecord] = []
    rest = reply[5:]
    for index in range(0, len(rest), 2):
        order, verified, since, node = _text(rest[index + 1]).split(" ")
        members.append(
            MemberRecord(
                user_id=_text(rest[index]),
                order=int(order),
                verified=verified == "1",
                joined_at=float(since),
                node_id=node,
            )
        )
    return RoomSnapshot(
        code=room_code,
        creator_id=creator,
        max_users=int(max_users),
        created_at=float(created),
        creator_joined=claimed == "1",
        version=int(version),
        members=members,
    )
