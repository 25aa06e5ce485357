"""Rooms shared by several relay processes, as a state machine without I/O.

:class:`SharedRelayState` is the :class:`~roupn.relay.RelayState` of one relay
process in a cluster. Each process keeps a replica of every room in which it has
a member. A process does not apply its users' actions to a replica directly.
It turns them into :class:`Command` records in :attr:`SharedRelayState.outbox`,
and a backplane applies each command to the shared store and publishes the
resulting :class:`Event` on the room's channel. Every process with a replica of
the room applies the events in channel order with :meth:`SharedRelayState.apply`,
so every replica goes through the same states, and each process delivers frames
only to its own sockets.

State events carry the room's version, which the shared store raises by one per
change, so a replica loaded from a snapshot skips the events it already contains
and notices a lost event.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import RoomError, RoomNotFoundError
from .relay import (
    POLICY_VIOLATION,
    Action,
    Broadcast,
    Close,
    JoinRefused,
    RelayState,
    Room,
    RoomTicket,
    Send,
    _raw,
)

__all__ = [
    "CloseRoom",
    "Command",
    "Event",
    "MemberRecord",
    "PublishFrame",
    "RemoveMember",
    "RoomSnapshot",
    "SharedRelayState",
    "VerifyUser",
    "decode_event",
    "encode_frame_event",
]

logger = logging.getLogger(__name__)

# The close code and reason for local members of a replica that lost an event.
INTERNAL_ERROR = 1011
RESYNC_REASON = "relay_resync"


# Commands: the changes this process requests from the shared store.


@dataclass(frozen=True, slots=True)
class PublishFrame:
    """Publish a stamped frame to a room.

    ``receiver`` is the user of a direct frame, or None for every verified member
    but ``sender``. ``sender`` is None for a control message of the relay itself.
    """

    room_code: str
    sender: str | None
    receiver: str | None
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class VerifyUser:
    """Mark ``user_id`` verified and forward the creator's stamped ``_UV`` frame."""

    room_code: str
    user_id: str
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class RemoveMember:
    """Remove a member. Removing the creator removes the whole room."""

    room_code: str
    user_id: str
    reason: str
    code: int


@dataclass(frozen=True, slots=True)
class CloseRoom:
    """Remove every member of a room, then the room."""

    room_code: str
    reason: str


Command = PublishFrame | VerifyUser | RemoveMember | CloseRoom


# Events: what every process holding a room applies, in channel order.


@dataclass(frozen=True, slots=True)
class Event:
    """One message of a room's channel.

    ``kind`` is ``join``, ``left``, ``verified``, ``closed`` or ``frame``.
    ``version`` is 0 for frames, which change no state.
    """

    kind: str
    version: int = 0
    user_id: str | None = None
    receiver: str | None = None
    is_creator: bool = False
    joined_at: float = 0.0
    reason: str = ""
    code: int = 1000
    frame: str | bytes = ""


def encode_frame_event(
    sender: str | None, receiver: str | None, frame: str | bytes
) -> bytes:
    """Return the channel message that carries a frame from ``sender``."""
    header: dict[str, str] = {"k": "frame"}
    if sender is not None:
        header["u"] = sender
    if receiver is not None:
        header["d"] = receiver
    body = frame.encode("utf-8") if isinstance(frame, str) else frame
    return json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + body


def decode_event(data: bytes, binary: bool) -> Event:
    """Decode a channel message: a JSON header line, then the frame, if any.

    Raises:
        ValueError: the message is not a valid event.
    """
    head, _, body = data.partition(b"\n")
    header = json.loads(head)
    if not isinstance(header, dict) or not isinstance(header.get("k"), str):
        raise ValueError("event header is not an object with a kind")
    frame: str | bytes = body if binary else body.decode("utf-8")
    return Event(
        kind=header["k"],
        version=int(header.get("v", 0)),
        user_id=header.get("u"),
        receiver=header.get("d"),
        is_creator=bool(header.get("c", 0)),
        joined_at=float(header.get("t", 0.0)),
        reason=str(header.get("r", "")),
        code=int(header.get("x", 1000)),
        frame=frame,
    )


# Snapshots: a room as the shared store keeps it.


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member as the shared store keeps it."""

    user_id: str
    order: int
    verified: bool
    joined_at: float
    node_id: str


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """A room as the shared store keeps it, at ``version``."""

    code: str
    creator_id: str
    max_users: int
    created_at: float
    creator_joined: bool
    version: int
    members: list[MemberRecord] = field(default_factory=list)


class SharedRelayState(RelayState):
    """The replicas of the rooms in which this relay process has members.

    Args:
        node_id: this process's id in the cluster.
        notify: called when a command was queued in an empty :attr:`outbox`.
        **options: the options of :class:`RelayState`.
    """

    def __init__(
        self,
        *,
        node_id: str,
        notify: Callable[[], None] = lambda: None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.node_id = node_id
        self.notify = notify
        self.outbox: deque[Command] = deque()
        # Users whose sockets this process holds, admitted or still joining.
        self.local: set[str] = set()
        # Users of ``local`` whose join is under way, with the room they join.
        self.joining: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self._leaving: set[str] = set()

    def _queue(self, command: Command) -> None:
        if not self.outbox:
            self.notify()
        self.outbox.append(command)

    # Replicas.

    def load(self, snapshot: RoomSnapshot) -> None:
        """Replace the replica of a room with a snapshot of the shared store."""
        self.forget(snapshot.code)
        room = Room(
            code=snapshot.code,
            creator_id=snapshot.creator_id,
            creator_secret_hash=b"",
            max_users=snapshot.max_users,
            created_at=snapshot.created_at,
            creator_joined=snapshot.creator_joined,
        )
        for member in sorted(snapshot.members, key=lambda m: m.order):
            room.members[member.user_id] = member.verified
            if not member.verified:
                room.pending_since[member.user_id] = member.joined_at
            self._room_of_user[member.user_id] = snapshot.code
        self.rooms[snapshot.code] = room
        self.versions[snapshot.code] = snapshot.version

    def forget(self, room_code: str) -> None:
        """Drop the replica of a room, without closing any socket."""
        room = self.rooms.pop(room_code, None)
        self.versions.pop(room_code, None)
        if room is not None:
            for user_id in room.members:
                self._room_of_user.pop(user_id, None)

    def local_members(self, room_code: str) -> list[str]:
        """Return the members of a room whose sockets this process holds."""
        room = self.rooms.get(room_code)
        if room is None:
            return []
        return [user_id for user_id in room.members if user_id in self.local]

    def apply(self, room_code: str, event: Event) -> list[Action]:
        """Apply one event of a room's channel to its replica and return the actions.

        An event older than the replica is skipped. A lost state event, seen as a
        version gap, makes the replica untrustworthy: its local members are
        closed with 1011 ``relay_resync`` and asked to leave, and it is dropped.
        """
        room = self.rooms.get(room_code)
        if room is None:
            return []
        if event.kind == "frame":
            return self._deliver_frame(room, event)
        current = self.versions.get(room_code, 0)
        if event.version <= current:
            return []
        if event.version != current + 1:
            logger.error(
                "= room replica at version %d got version %d: events were lost",
                current,
                event.version,
            )
            return self.resync(room_code)
        self.versions[room_code] = event.version
        user_id = event.user_id or ""
        if event.kind == "join":
            return self._admit(room, user_id, event.is_creator, event.joined_at)
        if event.kind == "verified":
            if user_id not in room.members:
                return []
            return super()._verify(room, room.creator_id, user_id, event.frame)
        if event.kind == "left":
            self._leaving.discard(user_id)
            actions = super().leave(user_id, event.reason, event.code)
            self._drop_local()
            return actions
        if event.kind == "closed":
            actions = self._remove_room(room_code, event.reason)
            self._drop_local()
            return actions
        logger.warning("= unknown event kind %r in a room channel, ignored", event.kind)
        return []

    def _deliver_frame(self, room: Room, event: Event) -> list[Action]:
        sender = event.user_id
        if sender is not None and sender not in room.members:
            return []  # the sender left before its frame came through
        if event.receiver is not None:
            if event.receiver in self.local and event.receiver in room.members:
                return [Send(event.receiver, event.frame)]
            return []
        local = self.local
        receivers = tuple(
            user_id
            for user_id, verified in room.members.items()
            if verified and user_id != sender and user_id in local
        )
        return [Broadcast(receivers, event.frame)] if receivers else []

    def _drop_local(self) -> None:
        """Stop counting local users that are in no replica and not joining."""
        gone = [
            user_id
            for user_id in self.local
            if user_id not in self._room_of_user and user_id not in self.joining
        ]
        self.local.difference_update(gone)

    def resync(self, room_code: str) -> list[Action]:
        """Drop a replica that may have missed events and close its local members.

        Each local member is closed with 1011 ``relay_resync`` and asked to
        leave, and the replica is dropped.
        """
        actions: list[Action] = []
        for user_id in self.local_members(room_code):
            actions.append(Close(user_id, INTERNAL_ERROR, RESYNC_REASON))
            self._queue(RemoveMember(room_code, user_id, RESYNC_REASON, INTERNAL_ERROR))
            self.local.discard(user_id)
        self.forget(room_code)
        return actions

    # Users joining through this process.

    def begin_join(self, room_code: str, user_id: str) -> None:
        """Count ``user_id`` as a socket of this process that is joining a room."""
        self.local.add(user_id)
        self.joining[user_id] = room_code

    def end_join(self, user_id: str, admitted: bool) -> None:
        """Finish a join that :meth:`begin_join` started."""
        self.joining.pop(user_id, None)
        if not admitted:
            self.local.discard(user_id)

    # What local users do: commands instead of changes.

    def create_room(self, limit: int | None = None) -> RoomTicket:
        """Raise: shared rooms are created in the shared store.

        Raises:
            RoomError: always. Use ``await ServerConnector.create_room_async()``.
        """
        raise RoomError(
            "rooms shared through a backplane are created in its store: use "
            "await server.create_room_async() instead of server.create_room()"
        )

    def join(
        self, room_code: str | None, creator_secret: str | None = None
    ) -> tuple[str, list[Action]] | JoinRefused:
        """Raise: shared rooms are joined through the backplane's link.

        Raises:
            RoomError: always.
        """
        raise RoomError("rooms shared through a backplane are joined by its link")

    def leave(
        self, user_id: str, reason: str = "left", code: int = 1000
    ) -> list[Action]:
        """Ask the cluster to remove a member, and close its socket now if it is local.

        The member stays in the replica until the ``left`` event comes back.
        """
        room = self.room_of(user_id)
        if room is None or user_id in self._leaving:
            return []
        self._leaving.add(user_id)
        self._queue(RemoveMember(room.code, user_id, reason, code))
        if user_id in self.local:
            return [Close(user_id, code, reason)]
        return []

    def remove_room(self, room_code: str, reason: str = "removed") -> list[Action]:
        """Ask the cluster to remove every user of a room, then the room."""
        if room_code in self.rooms:
            self._queue(CloseRoom(room_code, reason))
        return []

    def expire_unclaimed(self) -> list[Action]:
        """Return nothing: the shared store expires unclaimed rooms by itself."""
        return []

    def expire_unverified(self) -> list[Action]:
        """Ask the cluster to remove local joiners past the verification timeout."""
        if self.verification_timeout is None:
            return []
        deadline = self._clock() - self.verification_timeout
        actions: list[Action] = []
        for room in list(self.rooms.values()):
            for user_id, since in list(room.pending_since.items()):
                if since <= deadline and user_id in self.local:
                    logger.info(
                        "= user %s was not verified in time, removing it", user_id
                    )
                    actions.extend(
                        self.leave(user_id, "verification_timeout", POLICY_VIOLATION)
                    )
        return actions

    # Routing: frames go to the room's channel instead of to sockets.

    def _route_direct(
        self, room: Room, sender: str, encoded: str | bytes, text: str | bytes
    ) -> list[Action]:
        try:
            receiver = _raw(encoded).decode("utf-8")
        except ValueError:
            logger.warning("< invalid receiver id from user %s", sender)
            return self._refuse(sender, "invalid_frame")
        if receiver not in room.members:
            logger.debug(
                "< direct frame from %s to a user not in the room, dropped", sender
            )
            return []
        self._queue(PublishFrame(room.code, sender, receiver, self._forwarded(text)))
        return []

    def _route_room(self, room: Room, sender: str, text: str | bytes) -> list[Action]:
        if not room.members.get(sender):
            logger.warning("< room frame from unverified user %s, dropped", sender)
            return []
        self._queue(PublishFrame(room.code, sender, None, self._forwarded(text)))
        return []

    def _verify(
        self, room: Room, sender: str, target: str, frame: str | bytes
    ) -> list[Action]:
        self._queue(VerifyUser(room.code, target, frame))
        return []

    # Messages the relay itself sends.

    def message_room(self, room_code: str, message: dict[str, Any]) -> list[Action]:
        """Publish a control message from the relay to every verified user.

        Raises:
            RoomNotFoundError: this process has no room with this code.
        """
        self._require(room_code)
        self._queue(PublishFrame(room_code, None, None, self._control_frame(message)))
        return []

    def message_user(
        self, room_code: str, user_id: str, message: dict[str, Any]
    ) -> list[Action]:
        """Publish a control message from the relay to one user of a room.

        Raises:
            RoomNotFoundError: this process has no room with this code, or the
                user is not in it.
        """
        room = self._require(room_code)
        if user_id not in room.members:
            raise RoomNotFoundError(f"user {user_id!r} is not in room {room_code!r}")
        frame = self._control_frame(message)
        self._queue(PublishFrame(room_code, None, user_id, frame))
        return []
