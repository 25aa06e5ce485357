"""A client's room session as a state machine without I/O.

:class:`RoomSession` takes events (a decoded frame arrived, the user called a method,
a callback returned) and returns actions: frames to send, events to report, callbacks
to run, and whether to leave. The client connector drives it over a transport.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import (
    CryptoError,
    DecryptionError,
    FrameError,
    MessageError,
    ProfileError,
    ProtocolError,
    ReplayError,
    RoupnError,
    StateError,
    VerificationError,
)
from .frames import Frame, frame_text
from .interfaces import CipherSuite, Identity, MessageContext, PeerKeys, Serializer
from .messages import ConnectionState, MessageType

__all__ = [
    "CheckData",
    "Leave",
    "Message",
    "Notice",
    "RoomSession",
    "SendFrame",
]

logger = logging.getLogger(__name__)

# Times are milliseconds since the Unix epoch; 15 digits reach the year 33658.
MAX_TIME_DIGITS = 15
MAX_TIME = 10**MAX_TIME_DIGITS


def _is_time(value: Any) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TIME
    )


# The profile of a peer that names none: the JavaScript library's suite and serializer.
ROUPN_01_PROFILE = {"cipherSuite": "webcrypto", "serializer": "json"}

# The joiner's reveal of its keys in the handshake of suites that commit to keys.
EXCHANGE_REVEAL = "_XR"
# The creator's new room key after a member left, for suites that re-key.
EXCHANGE_REKEY = "_X5"


def _describe(profile: Any) -> str:
    if isinstance(profile, dict):
        return f"{profile.get('cipherSuite')}/{profile.get('serializer')}"
    return repr(profile)


HANDSHAKE_TYPES = frozenset(
    {
        MessageType.EXCHANGE_0,
        MessageType.EXCHANGE_1,
        MessageType.EXCHANGE_2,
        MessageType.EXCHANGE_3,
        MessageType.EXCHANGE_4,
        EXCHANGE_REVEAL,
        EXCHANGE_REKEY,
    }
)


# Actions.


@dataclass(frozen=True, slots=True)
class SendFrame:
    """Send this frame to the relay."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class Notice:
    """Report ``event`` to the listeners with ``args``."""

    event: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class CheckData:
    """Ask the user's ``verify_public_data`` or ``verify_private_data`` callback.

    The connector calls the callback with ``{"data": data, "userId": user_id}`` and
    passes the result back through :meth:`RoomSession.data_checked`.
    """

    kind: str  # "public" or "private"
    user_id: str
    data: Any


@dataclass(frozen=True, slots=True)
class Leave:
    """Close the connection to the relay."""

    reason: str


Action = SendFrame | Notice | CheckData | Leave


@dataclass(frozen=True, slots=True)
class Message:
    """A decrypted room or direct message, with its sender and timing.

    ``delay``, ``offset`` and ``adjusted`` are in milliseconds: the receiver's
    estimate of transit time, clock offset from the relay, and sending time.
    """

    data: dict[str, Any]
    sender: str | None
    direct: bool
    delay: int
    offset: float
    adjusted: float


@dataclass(slots=True)
class Peer:
    """Another member this client exchanged keys with: its keys, codes and data."""

    user_id: str
    keys: PeerKeys | None = None
    pairwise_key: bytes | None = None
    verification_code: str | None = None
    public_data: Any = None
    private_data: Any = None
    code_matched: bool = False
    commitment: str | None = None


@dataclass(slots=True)
class RoomOptions:
    """The data this client shows other members during the handshake."""

    public_data: Any = None
    private_data: Any = None


@dataclass(slots=True)
class _Buffered:
    received_at: float
    frame: Frame


class RoomSession:
    """One client's membership of one room, from the join frame to leaving.

    Args:
        suite: the cipher suite.
        serializer: encodes messages for encryption and for ``S`` and ``D`` fields.
        identity: this client's keys, from ``suite.generate_identity()``.
        room_code: the room's code, needed for verification codes.
        options: the data this client shows other members.
        room_key: the room key, for the creator only.
    """

    def __init__(
        self,
        *,
        suite: CipherSuite,
        serializer: Serializer,
        identity: Identity,
        room_code: str,
        options: RoomOptions,
        room_key: bytes | None = None,
        verification_code_length: int = 6,
        message_buffer_max_count: int = 50,
        message_buffer_max_duration: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.suite = suite
        self.serializer = serializer
        self.identity = identity
        self.room_code = room_code
        self.options = options
        self.room_keys: dict[int, bytes] = {0: room_key} if room_key else {}
        self.epoch = 0
        self.verification_code_length = verification_code_length
        self.message_buffer_max_duration = message_buffer_max_duration
        self._clock = clock
        self.state = ConnectionState.CONNECTING
        self.user_id: str | None = None
        self.creator_id: str | None = None
        self.users: list[str] = []
        self.verified_users: set[str] = set()
        self.peers: dict[str, Peer] = {}
        self._buffer: deque[_Buffered] = deque(maxlen=message_buffer_max_count)
        self.profile = {"cipherSuite": suite.name, "serializer": serializer.name}
        # Counters of sent messages, and the last counter seen from each sender.
        self._room_counter = 0
        self._direct_counters: dict[str, int] = {}
        self._seen_room: dict[tuple[str, int], int] = {}
        self._seen_direct: dict[str, int] = {}

    @property
    def room_key(self) -> bytes | None:
        """The room key of the current epoch, or None before the joiner has one."""
        return self.room_keys.get(self.epoch)

    @property
    def is_creator(self) -> bool:
        """Whether this client created the room."""
        return self.user_id is not None and self.user_id == self.creator_id

    # Helpers.

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _stamp(self, message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "sender": self.user_id, "senderTime": self._now_ms()}

    def _set_state(self, state: ConnectionState) -> list[Action]:
        if state is self.state:
            return []
        self.state = state
        return [Notice("on_connection", (state,))]

    def _error(self, error: RoupnError) -> list[Action]:
        logger.info("room session error: %s", error)
        return [Notice("on_error", (error,))]

    def _context(
        self, counter: int = 0, pairwise_key: bytes | None = None
    ) -> MessageContext:
        assert self.user_id is not None
        return MessageContext(
            self.room_code, self.user_id, self.epoch, counter, pairwise_key
        )

    def _direct(self, peer: Peer, message: dict[str, Any]) -> SendFrame:
        plaintext = self.serializer.dumps(self._stamp(message))
        counter = self._direct_counters.get(peer.user_id, 0) + 1
        self._direct_counters[peer.user_id] = counter
        context = self._context(counter, peer.pairwise_key)
        fields = self.suite.seal_direct(self.identity, peer.keys, plaintext, context)
        return SendFrame({**fields, "U": peer.user_id.encode("utf-8")})

    def _clear_direct(self, user_id: str, message: dict[str, Any]) -> SendFrame:
        clear = self.serializer.dumps(self._stamp(message))
        return SendFrame({"D": clear, "U": user_id.encode("utf-8")})

    def _check_profile(self, user_id: str, message: dict[str, Any]) -> None:
        """Raise unless the peer speaks the same cipher suite and serializer."""
        theirs = message.get("profile") or ROUPN_01_PROFILE
        if theirs != self.profile:
            raise ProfileError(
                f"user {user_id} uses the profile {_describe(theirs)}, but this client "
                f"uses {_describe(self.profile)}: both must choose the same cipher "
                "suite and serializer"
            )

    def _profile_field(self) -> dict[str, Any]:
        return {} if self.profile == ROUPN_01_PROFILE else {"profile": self.profile}

    def _control(self, message: dict[str, Any]) -> SendFrame:
        return SendFrame({"S": self.serializer.dumps(self._stamp(message))})

    def _kick(self, user_id: str, why: str) -> list[Action]:
        logger.info("kicking user %s: %s", user_id, why)
        self.peers.pop(user_id, None)
        kick = {"type": MessageType.USER_KICK.value, "userId": user_id}
        return [self._control(kick)]

    # Frames from the relay.

    def receive(self, frame: Frame) -> list[Action]:
        """Handle one decoded frame; errors become ``on_error`` notices."""
        try:
            return self._receive(frame)
        except RoupnError as exc:
            return self._error(exc)

    def _receive(self, frame: Frame) -> list[Action]:
        relay_time = self._relay_time(frame)
        if "U" in frame:
            # A frame addressed to one user comes from another member, who controls
            # all of it, so only the handshake and encrypted direct messages count.
            if "D" in frame:
                return self._receive_clear_direct(frame)
            if "P" in frame:
                return self._receive_direct(frame, relay_time)
            raise FrameError(
                f"direct frame with keys {sorted(frame)} carries no message"
            )
        if "S" in frame:
            return self._receive_control(self._loads(frame["S"]), relay_time)
        if "E" in frame:
            return self._receive_room(frame, relay_time)
        raise FrameError(f"frame with keys {sorted(frame)} carries no message")

    def _relay_time(self, frame: Frame) -> int | None:
        text = frame_text(frame, "T")
        if text is None:
            return None
        if not (text.isascii() and text.isdigit() and len(text) <= MAX_TIME_DIGITS):
            raise FrameError(
                f"relay time {text!r} is not a whole number of milliseconds"
            )
        return int(text)

    def _loads(self, data: bytes) -> dict[str, Any]:
        message = self.serializer.loads(data)
        if not isinstance(message, dict):
            raise MessageError(f"message is a {type(message).__name__}, not an object")
        if "type" in message and not isinstance(message["type"], str):
            raise MessageError(f"message type {message['type']!r} is not a string")
        return message

    def _timing(
        self, message: dict[str, Any], relay_time: int | None
    ) -> tuple[int, float, float]:
        now = self._now_ms()
        sent = message.get("senderTime")
        if not isinstance(sent, int) or not _is_time(sent):
            return 0, 0.0, float(now)
        delay = now - sent
        offset = ((relay_time - sent) + (relay_time - now)) / 2 if relay_time else 0.0
        return delay, offset, now - delay + offset

    def _receive_control(
        self, message: dict[str, Any], relay_time: int | None
    ) -> list[Action]:
        kind = message.get("type")
        if kind == MessageType.ROOM_JOINED:
            return self._room_joined(message)
        user_id = message.get("userId")
        if not isinstance(user_id, str):
            raise MessageError(f"{kind} message has no valid userId: {user_id!r}")
        if kind == MessageType.USER_JOINED:
            if user_id not in self.users:
                self.users.append(user_id)
            return [Notice("on_user_join", (user_id,))]
        if kind == MessageType.USER_LEFT:
            if user_id in self.users:
                self.users.remove(user_id)
            was_member = user_id in self.verified_users
            self.verified_users.discard(user_id)
            self.peers.pop(user_id, None)
            actions: list[Action] = [Notice("on_user_leave", (user_id,))]
            if was_member and self.is_creator and self.suite.rekeys:
                actions += self._rekey()
            return actions
        if kind == MessageType.USER_VERIFIED:
            if message.get("sender") != self.creator_id:
                raise ProtocolError(
                    "a verification notice did not come from the creator"
                )
            self.verified_users.add(user_id)
            return [Notice("on_user_verified", (user_id,))]
        raise MessageError(f"unknown control message type {kind!r}")

    def _room_joined(self, message: dict[str, Any]) -> list[Action]:
        creator_id = message.get("creatorId")
        user_id = message.get("userId")
        users = message.get("users")
        if not (
            isinstance(creator_id, str)
            and isinstance(user_id, str)
            and isinstance(users, list)
            and all(isinstance(u, str) for u in users)
        ):
            raise MessageError(
                "room joined message has invalid creatorId, userId or users"
            )
        if self.user_id is not None:
            raise ProtocolError("room joined message arrived twice")
        self.user_id, self.creator_id, self.users = user_id, creator_id, list(users)
        self.verified_users = {creator_id}
        joined = {
            "creatorId": creator_id,
            "roomCode": self.room_code,
            "userId": user_id,
            "users": list(users),
        }
        actions: list[Action] = [Notice("on_room_join", (joined,))]
        if self.is_creator:
            if self.room_key is None:
                raise StateError("the creator has no room key")
            return actions + self._set_state(ConnectionState.CONNECTED)

        actions += self._set_state(ConnectionState.PENDING_VERIFICATION)
        hello: dict[str, Any] = {
            "type": MessageType.EXCHANGE_0.value,
            "publicData": self.options.public_data,
        }
        if self.suite.commits_keys:
            # Only a hash of the keys goes out now. The keys follow once the creator
            # has shown its own, so no one can pick keys that make the codes match.
            hello["commitment"] = self.suite.commitment(self.identity)
        else:
            hello.update(self.suite.public_fields(self.identity))
            hello["signature"] = self.suite.sign_exchange(self.identity)
        hello.update(self._profile_field())
        actions.append(self._clear_direct(creator_id, hello))
        return actions

    # Handshake.

    def _receive_clear_direct(self, frame: Frame) -> list[Action]:
        message = self._loads(frame["D"])
        sender = message.get("sender")
        kind = message.get("type")
        if not isinstance(sender, str):
            raise ProtocolError("a clear handshake message has no sender")
        if kind == MessageType.EXCHANGE_1 and self.suite.commits_keys:
            return self._receive_creator_keys(sender, message)
        if not self.is_creator:
            raise ProtocolError(f"user {sender} sent a join handshake to a non-creator")
        if kind == EXCHANGE_REVEAL and self.suite.commits_keys:
            return self._receive_reveal(sender, message)
        if kind != MessageType.EXCHANGE_0:
            raise ProtocolError(
                f"a clear direct message of type {kind!r} is not allowed"
            )
        if sender not in self.users or sender == self.user_id:
            raise ProtocolError(f"join handshake from unknown user {sender}")
        if sender in self.peers or sender in self.verified_users:
            # A second handshake for the same id would replace the keys of a user
            # already in the handshake or verified, so it cannot come from that user.
            raise ProtocolError(f"repeated join handshake for user {sender}; ignored")
        try:
            self._check_profile(sender, message)
        except ProfileError as exc:
            return self._error(exc) + self._kick(sender, "other profile")
        public_data = message.get("publicData")
        if self.suite.commits_keys:
            commitment = message.get("commitment")
            if not isinstance(commitment, str):
                error = ProtocolError(f"user {sender} sent no key commitment")
                return self._error(error) + self._kick(sender, "no commitment")
            self.peers[sender] = Peer(
                sender, public_data=public_data, commitment=commitment
            )
            return [CheckData("public", sender, public_data)]
        try:
            keys = self._load_signed_keys(sender, message)
        except CryptoError as exc:
            return self._error(exc) + self._kick(sender, "invalid keys")
        self.peers[sender] = Peer(sender, keys=keys, public_data=public_data)
        return [CheckData("public", sender, public_data)]

    def _load_signed_keys(self, sender: str, message: dict[str, Any]) -> PeerKeys:
        keys = self.suite.load_peer(message)
        if not self.suite.verify_exchange(keys, message.get("signature")):
            raise CryptoError(f"user {sender} sent an invalid exchange key signature")
        return keys

    def _receive_creator_keys(
        self, sender: str, message: dict[str, Any]
    ) -> list[Action]:
        """Take the creator's keys, sent in clear once this joiner committed."""
        if self.is_creator or sender != self.creator_id or sender in self.peers:
            raise ProtocolError(f"unexpected clear _X1 message from {sender}")
        self._check_profile(sender, message)
        keys = self._load_signed_keys(sender, message)
        public_data = message.get("publicData")
        self.peers[sender] = Peer(sender, keys=keys, public_data=public_data)
        return [CheckData("public", sender, public_data)]

    def _receive_reveal(self, sender: str, message: dict[str, Any]) -> list[Action]:
        """Check a joiner's revealed keys against its commitment, then show the code."""
        peer = self.peers.get(sender)
        if peer is None or peer.commitment is None or peer.keys is not None:
            raise ProtocolError(f"unexpected key reveal from {sender}")
        if not self.suite.check_commitment(message, peer.commitment):
            error = VerificationError(
                f"user {sender} revealed keys it did not commit to"
            )
            return self._error(error) + self._kick(sender, "commitment mismatch")
        try:
            peer.keys = self._load_signed_keys(sender, message)
        except CryptoError as exc:
            return self._error(exc) + self._kick(sender, "invalid keys")
        return self._show_code(peer)

    def _open_direct(
        self, frame: Frame
    ) -> tuple[dict[str, Any], PeerKeys, Peer | None]:
        """Decrypt a direct frame and prove its sender.

        Returns the message, the sender's keys and the sender's peer record (None
        before the roupn 0.1 ``_X1``). Suites whose header names the sender open the
        frame with that sender's pairwise key, which proves it, and reject a counter
        that is not above the last one. Otherwise the frame is decrypted first and
        its signature checked with the sender's key, because the roupn 0.1 creator's
        signing key arrives inside its first direct message (``_X1``).
        """
        fields = {key: frame[key] for key in self.suite.direct_fields if key in frame}
        header = self.suite.direct_header(fields)
        if header.sender_id is not None:
            return self._open_counted_direct(header.sender_id, header.counter, fields)
        message = self._loads(self.suite.open_direct(self.identity, None, fields))
        sender = message.get("sender")
        if not isinstance(sender, str):
            raise MessageError("direct message has no sender")
        peer = self.peers.get(sender)
        if peer is not None and peer.keys is not None:
            keys = peer.keys
        elif (
            sender == self.creator_id and message.get("type") == MessageType.EXCHANGE_1
        ):
            keys = self.suite.load_peer(message)
        else:
            raise ProtocolError(f"direct message from {sender}, who has no keys here")
        if not self.suite.verify_direct(keys, fields):
            raise DecryptionError(f"direct message signature from {sender} is invalid")
        return message, keys, peer

    def _open_counted_direct(
        self, sender: str, counter: int | None, fields: dict[str, bytes]
    ) -> tuple[dict[str, Any], PeerKeys, Peer | None]:
        peer = self.peers.get(sender)
        if peer is None or peer.pairwise_key is None:
            raise ProtocolError(f"direct message from {sender}, who has no keys here")
        context = self._context(0, peer.pairwise_key)
        message = self._loads(
            self.suite.open_direct(self.identity, peer.keys, fields, context)
        )
        if message.get("sender") != sender:
            raise ProtocolError(f"direct message from {sender} names another sender")
        last = self._seen_direct.get(sender, 0)
        if counter is None or counter <= last:
            raise ReplayError(
                f"direct message {counter} from {sender} was already received or "
                f"arrived after message {last}: replayed or reordered"
            )
        self._seen_direct[sender] = counter
        return message, peer.keys, peer

    def _receive_direct(self, frame: Frame, relay_time: int | None) -> list[Action]:
        message, keys, peer = self._open_direct(frame)
        kind = message.get("type")
        sender: str = message["sender"]
        if kind == MessageType.EXCHANGE_1 and peer is None:
            self.peers[sender] = Peer(
                sender, keys=keys, public_data=message.get("publicData")
            )
            return [CheckData("public", sender, message.get("publicData"))]
        if peer is None:
            raise ProtocolError(f"unexpected {kind} message from {sender}")
        if kind == MessageType.EXCHANGE_2:
            if self.is_creator or sender != self.creator_id:
                raise ProtocolError(f"unexpected _X2 message from {sender}")
            return [CheckData("private", sender, message.get("privateData"))]
        if kind == MessageType.EXCHANGE_3:
            if not self.is_creator:
                raise ProtocolError(f"unexpected _X3 message from {sender}")
            if not peer.code_matched:
                error = VerificationError(
                    f"user {sender} sent _X3 before being verified"
                )
                return self._error(error) + self._kick(sender, "not verified")
            return [CheckData("private", sender, message.get("privateData"))]
        if kind == MessageType.EXCHANGE_4:
            return self._receive_room_key(sender, message)
        if kind == EXCHANGE_REKEY:
            return self._receive_new_room_key(sender, message)
        if kind in HANDSHAKE_TYPES or (isinstance(kind, str) and kind.startswith("_")):
            raise ProtocolError(f"unexpected {kind} message from {sender}")
        if sender not in self.verified_users:
            raise ProtocolError(
                f"direct message from unverified user {sender}; dropped"
            )
        delay, offset, adjusted = self._timing(message, relay_time)
        return [
            Notice(
                "on_message", (Message(message, sender, True, delay, offset, adjusted),)
            )
        ]

    def data_checked(self, kind: str, user_id: str, accepted: bool) -> list[Action]:
        """Continue the handshake once a ``verify_*_data`` callback returned."""
        peer = self.peers.get(user_id)
        if peer is None:
            return []
        if not accepted:
            error = VerificationError(f"the {kind} data of user {user_id} was rejected")
            if self.is_creator:
                return self._error(error) + self._kick(user_id, f"{kind} data rejected")
            return [*self._error(error), Leave(f"{kind} data of the creator rejected")]
        if kind == "public":
            return self._public_data_accepted(peer)
        if self.is_creator:
            return self._admit(peer)
        reply = {"type": MessageType.EXCHANGE_3.value}
        if self.options.private_data is not None:
            reply["privateData"] = self.options.private_data
        peer.private_data = None
        return [self._direct(peer, reply)]

    def _public_data_accepted(self, peer: Peer) -> list[Action]:
        if not self.suite.commits_keys:
            actions = self._show_code(peer)
            if self.is_creator:
                answer = {
                    "type": MessageType.EXCHANGE_1.value,
                    "publicData": self.options.public_data,
                    **self.suite.public_fields(self.identity),
                }
                actions.insert(0, self._direct(peer, answer))
            return actions
        if self.is_creator:
            # The joiner has committed to its keys, so the creator can show its own.
            answer = {
                "type": MessageType.EXCHANGE_1.value,
                "publicData": self.options.public_data,
                **self.suite.public_fields(self.identity),
                "signature": self.suite.sign_exchange(self.identity),
                **self._profile_field(),
            }
            return [self._clear_direct(peer.user_id, answer)]
        reveal = {
            "type": EXCHANGE_REVEAL,
            **self.suite.public_fields(self.identity),
            "signature": self.suite.sign_exchange(self.identity),
        }
        return [self._clear_direct(peer.user_id, reveal), *self._show_code(peer)]

    def _show_code(self, peer: Peer) -> list[Action]:
        peer.pairwise_key = self.suite.pairwise_key(
            self.identity, peer.keys, self.room_code
        )
        peer.verification_code = self.suite.verification_code(
            self.room_code, peer.pairwise_key, self.verification_code_length
        )
        code_event = {"userId": peer.user_id, "code": peer.verification_code}
        return [Notice("on_user_verification_code", (code_event,))]

    def verify_user(self, user_id: str, code: str) -> tuple[bool, list[Action]]:
        """Compare the code a joiner read out with this creator's code for them."""
        if not self.is_creator:
            raise StateError("only the room's creator can verify users")
        peer = self.peers.get(user_id)
        if peer is None or peer.verification_code is None:
            raise StateError(f"user {user_id} has no verification code yet")
        given = code.strip().upper().encode("utf-8")
        if not hmac.compare_digest(given, peer.verification_code.encode("utf-8")):
            return False, []
        peer.code_matched = True
        reply = {"type": MessageType.EXCHANGE_2.value}
        if self.options.private_data is not None:
            reply["privateData"] = self.options.private_data
        return True, [self._direct(peer, reply)]

    def _key_message(self, kind: str) -> dict[str, Any]:
        assert self.room_key is not None
        message: dict[str, Any] = {
            "type": kind,
            "sharedKey": self.suite.export_room_key(self.room_key),
        }
        if self.suite.rekeys:
            message["epoch"] = self.epoch
        return message

    def _admit(self, peer: Peer) -> list[Action]:
        self.verified_users.add(peer.user_id)
        verified = {"type": MessageType.USER_VERIFIED.value, "userId": peer.user_id}
        return [
            self._control(verified),
            self._direct(peer, self._key_message(MessageType.EXCHANGE_4.value)),
            Notice("on_user_verified", (peer.user_id,)),
        ]

    def _rekey(self) -> list[Action]:
        """Make the next epoch's room key and send it to every remaining member.

        A member who left or was kicked keeps only the old keys, so it cannot read
        anything sent from now on.
        """
        self.epoch += 1
        self.room_keys[self.epoch] = self.suite.new_room_key()
        self._room_counter = 0
        logger.info("room key renewed: epoch %d", self.epoch)
        message = self._key_message(EXCHANGE_REKEY)
        return [
            self._direct(peer, message)
            for user_id, peer in self.peers.items()
            if user_id in self.verified_users and peer.pairwise_key is not None
        ]

    def _import_epoch_key(self, message: dict[str, Any]) -> int:
        key = self.suite.import_room_key(message.get("sharedKey"))
        epoch = message.get("epoch", 0)
        if (
            not isinstance(epoch, int)
            or isinstance(epoch, bool)
            or not 0 <= epoch < 2**32
        ):
            raise MessageError(f"room key message has an invalid epoch: {epoch!r}")
        if epoch < self.epoch:
            raise ProtocolError(f"room key for old epoch {epoch} ignored")
        self.room_keys[epoch] = key
        if epoch != self.epoch:
            self._room_counter = 0
        self.epoch = epoch
        return epoch

    def _receive_room_key(self, sender: str, message: dict[str, Any]) -> list[Action]:
        if self.is_creator or sender != self.creator_id or self.room_keys:
            raise ProtocolError(f"unexpected _X4 message from {sender}")
        self._import_epoch_key(message)
        assert self.user_id is not None
        self.verified_users.add(self.user_id)
        actions: list[Action] = [Notice("on_user_verified", (self.user_id,))]
        actions += self._replay_buffer()
        return actions + self._set_state(ConnectionState.CONNECTED)

    def _receive_new_room_key(
        self, sender: str, message: dict[str, Any]
    ) -> list[Action]:
        if self.is_creator or sender != self.creator_id or not self.room_keys:
            raise ProtocolError(f"unexpected {EXCHANGE_REKEY} message from {sender}")
        self._import_epoch_key(message)
        return self._replay_buffer()

    def _replay_buffer(self) -> list[Action]:
        """Handle the buffered room messages whose key has arrived since."""
        actions: list[Action] = []
        deadline = self._clock() - self.message_buffer_max_duration
        waiting = list(self._buffer)
        self._buffer.clear()
        for buffered in waiting:
            if buffered.received_at >= deadline:
                actions += self.receive(buffered.frame)
        return actions

    # Room messages.

    def _receive_room(self, frame: Frame, relay_time: int | None) -> list[Action]:
        fields = {key: frame[key] for key in self.suite.room_fields if key in frame}
        header = self.suite.room_header(fields)
        room_key = self.room_keys.get(header.epoch)
        if room_key is None:
            # Before the joiner's first key, or a message of an epoch whose key is
            # still on its way: kept until the key arrives (bounded buffer).
            self._buffer.append(_Buffered(self._clock(), frame))
            return []
        context = MessageContext(self.room_code, header.sender_id or "", header.epoch)
        message = self._loads(self.suite.open_room(room_key, fields, context))
        sender = message.get("sender")
        actions: list[Action] = []
        if header.sender_id is not None:
            if sender != header.sender_id:
                raise ProtocolError(
                    f"room message from {header.sender_id} names another sender"
                )
            actions += self._check_room_counter(
                header.sender_id, header.epoch, header.counter
            )
        delay, offset, adjusted = self._timing(message, relay_time)
        received = Message(
            message,
            sender if isinstance(sender, str) else None,
            False,
            delay,
            offset,
            adjusted,
        )
        return [*actions, Notice("on_message", (received,))]

    def _check_room_counter(
        self, sender: str, epoch: int, counter: int | None
    ) -> list[Action]:
        last = self._seen_room.get((sender, epoch), 0)
        if counter is None or counter <= last:
            raise ReplayError(
                f"room message {counter} of epoch {epoch} from {sender} was already "
                f"received or arrived after message {last}: replayed or reordered"
            )
        self._seen_room[(sender, epoch)] = counter
        if counter > last + 1:
            # The relay dropped messages; report it, then show what arrived.
            missing = ReplayError(
                f"room messages {last + 1} to {counter - 1} of epoch {epoch} from "
                f"{sender} never arrived"
            )
            return self._error(missing)
        return []

    # Methods the user calls.

    def seal_room_message(self, data: dict[str, Any]) -> SendFrame:
        """Encrypt a room message for every verified member."""
        frame, _ = self.seal_system_message(_check_payload(data))
        return frame

    def seal_system_message(
        self, message: dict[str, Any], *, not_before: int = 0
    ) -> tuple[SendFrame, dict[str, Any]]:
        """Encrypt a room message that may use a reserved type, such as ``_SU``.

        Returns the frame and the message as sent, with ``sender`` and ``senderTime``.
        ``senderTime`` is the current time in milliseconds, or ``not_before`` if
        that is later, for a caller that keeps a logical clock.
        """
        if self.room_key is None or self.state is not ConnectionState.CONNECTED:
            raise StateError(
                f"cannot send a room message while {self.state}: wait for CONNECTED"
            )
        stamped = self._stamp(message)
        if stamped["senderTime"] < not_before:
            stamped["senderTime"] = not_before
        plaintext = self.serializer.dumps(stamped)
        self._room_counter += 1
        context = self._context(self._room_counter)
        return SendFrame(
            self.suite.seal_room(self.room_key, plaintext, context)
        ), stamped

    def seal_direct_message(self, user_id: str, data: dict[str, Any]) -> SendFrame:
        """Encrypt a direct message to one member this client exchanged keys with."""
        peer = self.peers.get(user_id)
        if peer is None or peer.keys is None or user_id not in self.verified_users:
            raise StateError(
                f"cannot send a direct message to {user_id}: only verified members "
                "this client exchanged keys with (the creator, or any member for the "
                "creator) can be reached"
            )
        return self._direct(peer, _check_payload(data))

    def kick(self, user_id: str) -> SendFrame:
        """Ask the relay to remove a user; creator only."""
        if not self.is_creator:
            raise StateError("only the room's creator can kick users")
        if user_id == self.user_id:
            raise StateError(
                "the creator cannot kick itself: use close_room or leave_room"
            )
        return self._control({"type": MessageType.USER_KICK.value, "userId": user_id})

    def close(self) -> SendFrame:
        """Ask the relay to remove every user and the room; creator only."""
        if not self.is_creator:
            raise StateError("only the room's creator can close the room")
        return self._control({"type": MessageType.ROOM_CLOSED.value})


def _check_payload(data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError(f"a message must be a dict, not {type(data).__name__}")
    reserved = {"sender", "senderTime"} & data.keys()
    if reserved:
        raise ValueError(
            f"message keys {sorted(reserved)} are set by roupn; rename them"
        )
    kind = data.get("type")
    if isinstance(kind, str) and kind.startswith("_"):
        raise ValueError(
            f"message type {kind!r} is reserved: roupn uses the types that start with _"
        )
    return data
