"""The relay's room logic as a state machine without I/O.

:class:`RelayState` takes events (a room was requested, a socket joined, a frame
arrived, a socket closed, time passed) and returns actions (:class:`Send`,
:class:`Close`) plus notifications for the connector's listeners. It never decrypts
anything: it reads only the ``U`` and ``S`` segments it needs for routing, and
forwards the rest of each frame unchanged behind a ``T`` segment.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from base64 import b64decode, b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import FrameError, MessageError, RoomLimitError, RoomNotFoundError
from .frames import decode_binary, encode_binary, split_segments, time_segment_binary
from .messages import CODE_ALPHABET, MessageType

__all__ = [
    "Broadcast",
    "Close",
    "JoinRefused",
    "Notice",
    "RelayState",
    "Room",
    "RoomTicket",
    "Send",
]

logger = logging.getLogger(__name__)

# Close codes and reasons that JavaScript clients understand.
POLICY_VIOLATION = 1008
NORMAL_CLOSURE = 1000
MESSAGE_TOO_BIG = 1009
UNSUPPORTED_DATA = 1003
TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class RoomTicket:
    """The response to a create-room request."""

    creator_secret: str
    room_code: str
    user_id: str

    def to_message(self) -> dict[str, str]:
        """Return the create-room response with the protocol's field names."""
        return {
            "creatorSecret": self.creator_secret,
            "roomCode": self.room_code,
            "userId": self.user_id,
        }


@dataclass(slots=True)
class Room:
    """A room as the relay keeps it: members in join order and who is verified."""

    code: str
    creator_id: str
    creator_secret_hash: bytes
    max_users: int
    created_at: float
    members: dict[str, bool] = field(default_factory=dict)  # user id to verified
    creator_joined: bool = False
    # Join times, in seconds since the Unix epoch, of members not yet verified.
    pending_since: dict[str, float] = field(default_factory=dict)

    @property
    def verified_ids(self) -> list[str]:
        """The ids of verified members, in join order."""
        return [user_id for user_id, verified in self.members.items() if verified]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame`` to the socket of ``user_id``."""

    user_id: str
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send the same ``frame`` to the socket of each user in ``user_ids``."""

    user_ids: tuple[str, ...]
    frame: str | bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket of ``user_id`` with a WebSocket close code and reason."""

    user_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """An event for the connector's listeners: ``event`` and its arguments."""

    event: str
    args: tuple[Any, ...]


Action = Send | Broadcast | Close | Notice


@dataclass(frozen=True, slots=True)
class JoinRefused:
    """A join that the relay refused; the socket closes with ``code`` and ``reason``."""

    code: int
    reason: str


def _raw(value: str | bytes) -> bytes:
    """Return a segment's raw value: text frames carry it in base64."""
    if isinstance(value, bytes):
        return value
    return b64decode(value, validate=True)


def _others(room: Room, sender: str) -> tuple[str, ...]:
    """Return the verified members of a room other than ``sender``, in join order."""
    return tuple(
        user_id
        for user_id, verified in room.members.items()
        if verified and user_id != sender
    )


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class RelayState:
    """Every room of one relay and the routing rules of roupn 0.1.

    Args:
        dumps: encodes a control message (the ``S`` segment) to bytes.
        loads: decodes a control message; raises ``MessageError`` on bad input.
        max_users_per_room: the cap on every room, also when the creator requests
            no limit or a higher one.
        unclaimed_room_timeout: seconds after which a room whose creator never
            connected is removed.
        max_rooms: the maximum number of rooms; None for no limit.
        max_pending_per_room: the maximum number of joiners per room that wait
            for verification; None for no limit.
        verification_timeout: seconds a joiner may wait for verification before
            it is removed; None for no limit.
        binary: whether frames are binary (for a binary serializer) or text.
        max_frame_size: the longest frame, in characters, a user may send. It stays
            under the transports' 1 MiB message limit, so that a forwarded frame,
            longer by its ``T`` segment, still reaches every receiver.
        clock: returns the time in seconds since the Unix epoch.
    """

    def __init__(
        self,
        *,
        dumps: Callable[[Any], bytes],
        loads: Callable[[bytes], Any],
        max_users_per_room: int = 50,
        unclaimed_room_timeout: float = 60.0,
        room_code_length: int = 6,
        max_frame_size: int = 1_000_000,
        max_rooms: int | None = 10_000,
        max_pending_per_room: int | None = 10,
        verification_timeout: float | None = 300.0,
        binary: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_users_per_room < 1:
            raise ValueError(
                f"max_users_per_room must be at least 1, not {max_users_per_room}"
            )
        for name, value in [
            ("max_rooms", max_rooms),
            ("max_pending_per_room", max_pending_per_room),
        ]:
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, not {value}")
        if verification_timeout is not None and not verification_timeout > 0:
            raise ValueError(
                "verification_timeout must be more than 0 seconds or None, "
                f"not {verification_timeout}"
            )
        self._dumps = dumps
        self._loads = loads
        self.max_users_per_room = max_users_per_room
        self.unclaimed_room_timeout = unclaimed_room_timeout
        self.room_code_length = room_code_length
        self.max_frame_size = max_frame_size
        self.max_rooms = max_rooms
        self.max_pending_per_room = max_pending_per_room
        self.verification_timeout = verification_timeout
        self.binary = binary
        self._clock = clock
        self.rooms: dict[str, Room] = {}
        self._room_of_user: dict[str, str] = {}
        # The last T segment of each kind, with its time in milliseconds.
        self._text_stamp: tuple[int, str] = (-1, "")
        self._binary_stamp: tuple[int, bytes] = (-1, b"")

    # Frames the relay makes.

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _control_frame(
        self, message: dict[str, Any], *, timed: bool = True
    ) -> str | bytes:
        if self.binary:
            segment = encode_binary({"S": self._dumps(message)})
            return time_segment_binary(self._now_ms()) + segment if timed else segment
        text = "S:" + b64encode(self._dumps(message)).decode("ascii")
        return self._forwarded(text) if timed else text

    def _forwarded(self, data: str | bytes) -> str | bytes:
        # Many frames arrive within one millisecond, so each T segment is built
        # once per millisecond.
        now = self._now_ms()
        if isinstance(data, bytes):
            if self._binary_stamp[0] != now:
                self._binary_stamp = (now, time_segment_binary(now))
            return self._binary_stamp[1] + data
        if self._text_stamp[0] != now:
            encoded = b64encode(str(now).encode("ascii")).decode("ascii")
            self._text_stamp = (now, f"T:{encoded}|")
        return self._text_stamp[1] + data

    # Rooms.

    def _new_room_code(self) -> str:
        while True:
            code = "".join(
                secrets.choice(CODE_ALPHABET) for _ in range(self.room_code_length)
            )
            if code not in self.rooms:
                return code

    def create_room(self, limit: int | None = None) -> RoomTicket:
        """Make a room and return the creator's ticket.

        ``limit`` is the creator's requested maximum of users; the relay's own cap
        applies on top of it.

        Raises:
            ValueError: ``limit`` is less than 1.
            RoomLimitError: the relay already has ``max_rooms`` rooms.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"room limit must be at least 1, not {limit}")
        if self.max_rooms is not None and len(self.rooms) >= self.max_rooms:
            logger.warning("= room rejected: the relay has %d rooms", len(self.rooms))
            raise RoomLimitError(
                f"the relay already has its maximum of {self.max_rooms} rooms; "
                "try again later"
            )
        max_users = min(limit or self.max_users_per_room, self.max_users_per_room)
        ticket = RoomTicket(
            creator_secret=str(uuid.uuid4()),
            room_code=self._new_room_code(),
            user_id=str(uuid.uuid4()),
        )
        self.rooms[ticket.room_code] = Room(
            code=ticket.room_code,
            creator_id=ticket.user_id,
            creator_secret_hash=_hash_secret(ticket.creator_secret),
            max_users=max_users,
            created_at=self._clock(),
        )
        logger.info("= room created (limit %d)", max_users)
        return ticket

    def get_room(self, room_code: str) -> Room | None:
        """Return the room with this code, or None."""
        return self.rooms.get(room_code)

    def room_of(self, user_id: str) -> Room | None:
        """Return the room a connected user is in, or None."""
        code = self._room_of_user.get(user_id)
        return self.rooms.get(code) if code is not None else None

    def join(
        self, room_code: str | None, creator_secret: str | None = None
    ) -> tuple[str, list[Action]] | JoinRefused:
        """Admit a new socket to a room.

        Returns the new user's id and the actions to run, or how to refuse it. A
        socket that presents the right creator secret becomes the verified creator;
        any other socket is a joiner, verified later by the creator.
        """
        if not room_code:
            return JoinRefused(POLICY_VIOLATION, "missing_room_code")
        room = self.rooms.get(room_code)
        if room is None:
            return JoinRefused(POLICY_VIOLATION, "room_not_found")

        is_creator = creator_secret is not None and hmac.compare_digest(
            _hash_secret(creator_secret), room.creator_secret_hash
        )
        if creator_secret is not None and not is_creator:
            return JoinRefused(POLICY_VIOLATION, "invalid_creator_secret")
        if is_creator and room.creator_joined:
            return JoinRefused(POLICY_VIOLATION, "creator_already_joined")
        if not is_creator and not room.creator_joined:
            # No one could verify a joiner before the creator is there.
            return JoinRefused(POLICY_VIOLATION, "room_not_found")
        if len(room.members) >= room.max_users:
            return JoinRefused(POLICY_VIOLATION, "room_full")
        if (
            not is_creator
            and self.max_pending_per_room is not None
            and len(room.pending_since) >= self.max_pending_per_room
        ):
            return JoinRefused(TRY_AGAIN_LATER, "too_many_pending")

        user_id = room.creator_id if is_creator else str(uuid.uuid4())
        return user_id, self._admit(room, user_id, is_creator, self._clock())

    def _admit(
        self, room: Room, user_id: str, is_creator: bool, joined_at: float
    ) -> list[Action]:
        """Add a member that passed the join checks; return the announcements."""
        if is_creator:
            room.creator_joined = True
        room.members[user_id] = is_creator
        if not is_creator:
            room.pending_since[user_id] = joined_at
        self._room_of_user[user_id] = room.code

        joined = {
            "type": MessageType.ROOM_JOINED.value,
            "creatorId": room.creator_id,
            "userId": user_id,
            "users": list(room.members),
        }
        actions: list[Action] = [
            Send(user_id, self._control_frame(joined, timed=False))
        ]
        announce = self._control_frame(
            {"type": MessageType.USER_JOINED.value, "userId": user_id}
        )
        actions.extend(
            Send(other, announce) for other in room.verified_ids if other != user_id
        )
        actions.append(Notice("on_user_join", (room.code, user_id)))
        logger.info(
            "= user %s joined room (%s)", user_id, "creator" if is_creator else "joiner"
        )
        return actions

    def leave(
        self, user_id: str, reason: str = "left", code: int = NORMAL_CLOSURE
    ) -> list[Action]:
        """Remove a user whose socket closed or who was removed; close its socket.

        When the creator leaves, every other user is removed too, then the room.
        """
        room = self.room_of(user_id)
        if room is None:
            return []
        actions = self._remove_member(room, user_id, reason, code)
        if user_id == room.creator_id:
            actions.extend(self._remove_room(room.code, reason="creator_left"))
        elif not room.members:
            actions.extend(self._remove_room(room.code, reason="empty"))
        return actions

    def _remove_member(
        self, room: Room, user_id: str, reason: str, code: int = NORMAL_CLOSURE
    ) -> list[Action]:
        del room.members[user_id]
        room.pending_since.pop(user_id, None)
        del self._room_of_user[user_id]
        actions: list[Action] = [Close(user_id, code, reason)]
        announce = self._control_frame(
            {"type": MessageType.USER_LEFT.value, "userId": user_id}
        )
        actions.extend(Send(other, announce) for other in room.verified_ids)
        actions.append(Notice("on_user_leave", (room.code, user_id)))
        logger.info("= user %s left room: %s", user_id, reason)
        return actions

    def remove_room(self, room_code: str, reason: str = "removed") -> list[Action]:
        """Remove every user of a room, then the room."""
        return self._remove_room(room_code, reason)

    def _remove_room(self, room_code: str, reason: str) -> list[Action]:
        room = self.rooms.get(room_code)
        if room is None:
            return []
        actions: list[Action] = []
        for user_id in [u for u in room.members if u != room.creator_id]:
            actions.extend(self._remove_member(room, user_id, "room_closed"))
        if room.creator_id in room.members:
            actions.extend(self._remove_member(room, room.creator_id, "room_closed"))
        del self.rooms[room_code]
        actions.append(Notice("on_room_remove", (room_code,)))
        logger.info("= room removed: %s", reason)
        return actions

    def expire_unclaimed(self) -> list[Action]:
        """Remove rooms whose creator did not connect within the timeout."""
        deadline = self._clock() - self.unclaimed_room_timeout
        actions: list[Action] = []
        for room in list(self.rooms.values()):
            if not room.creator_joined and room.created_at <= deadline:
                actions.extend(
                    self._remove_room(room.code, reason="creator_never_joined")
                )
        return actions

    def expire_unverified(self) -> list[Action]:
        """Remove joiners that waited longer than the verification timeout."""
        if self.verification_timeout is None:
            return []
        deadline = self._clock() - self.verification_timeout
        expired = [
            user_id
            for room in self.rooms.values()
            for user_id, since in room.pending_since.items()
            if since <= deadline
        ]
        actions: list[Action] = []
        for user_id in expired:
            logger.info("= user %s was not verified in time; removing", user_id)
            actions.extend(
                self.leave(user_id, "verification_timeout", POLICY_VIOLATION)
            )
        return actions

    def expire(self) -> list[Action]:
        """Remove unclaimed rooms and joiners past the verification timeout."""
        return [*self.expire_unclaimed(), *self.expire_unverified()]

    # Frames from users.

    def receive(self, user_id: str, text: str | bytes) -> list[Action]:
        """Route one frame from a user. A malformed frame closes that user's socket.

        A relay with a binary serializer accepts only binary frames, and a relay
        with a text serializer only text frames. A frame of the other kind closes
        the socket with code 1003.
        """
        room = self.room_of(user_id)
        if room is None:
            return []
        if len(text) > self.max_frame_size:
            logger.warning(
                "< frame of %d characters from user %s is over the limit of %d",
                len(text),
                user_id,
                self.max_frame_size,
            )
            return self.leave(user_id, "frame_too_big", MESSAGE_TOO_BIG)
        if isinstance(text, bytes) is not self.binary:
            kind = "binary" if self.binary else "text"
            logger.warning("< frame from user %s is not a %s frame", user_id, kind)
            return self.leave(user_id, f"{kind}_frames_only", UNSUPPORTED_DATA)
        segments: Mapping[str, str | bytes]
        try:
            if isinstance(text, bytes):
                segments = decode_binary(text)
            else:
                segments = split_segments(text)
        except FrameError as exc:
            logger.warning("< invalid frame from user %s: %s", user_id, exc)
            return self._refuse(user_id, "invalid_frame")
        if "T" in segments:
            # Only the relay stamps frames; a forged time would reach receivers as
            # a second T segment.
            logger.warning("< frame from user %s carries a relay time", user_id)
            return self._refuse(user_id, "invalid_frame")

        actions: list[Action] = [Notice("on_room_message", (room.code, user_id, text))]
        if "U" in segments:
            actions.extend(self._route_direct(room, user_id, segments["U"], text))
        elif "E" in segments:
            actions.extend(self._route_room(room, user_id, text))
        elif "S" in segments:
            actions.extend(self._route_control(room, user_id, segments["S"], text))
        else:
            logger.debug("< frame from user %s has no routing key; ignored", user_id)
        return actions

    def _refuse(self, user_id: str, reason: str) -> list[Action]:
        return self.leave(user_id, reason, POLICY_VIOLATION)

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
                "< direct frame from %s to a user not in the room; dropped", sender
            )
            return []
        return [Send(receiver, self._forwarded(text))]

    def _route_room(self, room: Room, sender: str, text: str | bytes) -> list[Action]:
        if not room.members.get(sender):
            logger.warning("< room frame from unverified user %s; dropped", sender)
            return []
        return [Broadcast(_others(room, sender), self._forwarded(text))]

    def _route_control(
        self, room: Room, sender: str, encoded: str | bytes, text: str | bytes
    ) -> list[Action]:
        if sender != room.creator_id:
            logger.warning("< control frame from non-creator %s; ignored", sender)
            return []
        try:
            message = self._loads(_raw(encoded))
        except (ValueError, MessageError, RecursionError) as exc:
            logger.warning("< invalid control message from creator %s: %s", sender, exc)
            return []
        if not isinstance(message, dict):
            logger.warning("< control message from creator %s is not an object", sender)
            return []

        kind = message.get("type")
        target = message.get("userId")
        if kind == MessageType.ROOM_CLOSED:
            return self.remove_room(room.code, reason="closed_by_creator")
        if kind == MessageType.USER_KICK:
            if not isinstance(target, str) or target == room.creator_id:
                logger.warning(
                    "< kick of an invalid user from creator %s; ignored", sender
                )
                return []
            if target not in room.members:
                return []
            return self.leave(target, reason="kicked")
        if kind == MessageType.USER_VERIFIED:
            if not isinstance(target, str) or target not in room.members:
                logger.warning("< verification of an unknown user; ignored")
                return []
            return self._verify(room, sender, target, self._forwarded(text))
        logger.warning("< unknown control message type %r from creator; ignored", kind)
        return []

    def _verify(
        self, room: Room, sender: str, target: str, frame: str | bytes
    ) -> list[Action]:
        """Forward a stamped ``_UV`` frame to the others, then mark ``target``."""
        actions: list[Action] = [Broadcast(_others(room, sender), frame)]
        room.members[target] = True
        room.pending_since.pop(target, None)
        actions.append(Notice("on_user_verified", (room.code, target)))
        return actions

    # Messages the relay itself sends.

    def message_room(self, room_code: str, message: dict[str, Any]) -> list[Action]:
        """Send a control message from the relay to every verified user of a room.

        Raises:
            RoomNotFoundError: no room has this code.
        """
        room = self._require(room_code)
        frame = self._control_frame(message)
        return [Send(user_id, frame) for user_id in room.verified_ids]

    def message_user(
        self, room_code: str, user_id: str, message: dict[str, Any]
    ) -> list[Action]:
        """Send a control message from the relay to one user of a room.

        Raises:
            RoomNotFoundError: no room has this code, or the user is not in it.
        """
        room = self._require(room_code)
        if user_id not in room.members:
            raise RoomNotFoundError(f"user {user_id!r} is not in room {room_code!r}")
        return [Send(user_id, self._control_frame(message))]

    def _require(self, room_code: str) -> Room:
        room = self.rooms.get(room_code)
        if room is None:
            raise RoomNotFoundError(f"no room has the code {room_code!r}")
        return room
