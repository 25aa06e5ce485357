"""Room sessions and the relay wired together without sockets, for hostile cases."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from roupn.errors import DecryptionError, ProtocolError, VerificationError
from roupn.frames import Frame, decode_binary, decode_text, encode_binary, encode_text
from roupn.messages import ConnectionState
from roupn.relay import Broadcast, Close, JoinRefused, RelayState, Send
from roupn.session import (
    CheckData,
    Leave,
    Message,
    Notice,
    RoomOptions,
    RoomSession,
    SendFrame,
)
from roupn.settings import Settings

pytestmark = pytest.mark.usefixtures("quick_keys")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Room:
    """A relay and its members' sessions, passing frames through queues."""

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.suite = settings.load_cipher_suite()
        self.serializer = settings.load_serializer()
        self.clock = FakeClock()
        self.relay = RelayState(
            dumps=self.serializer.dumps,
            loads=self.serializer.loads,
            clock=self.clock,
            binary=self.serializer.binary,
        )
        self.ticket = self.relay.create_room()
        self.sessions: dict[str, RoomSession] = {}
        self.notices: dict[str, list[Notice]] = {}
        self.closed: dict[str, tuple[int, str]] = {}
        self.accept: Callable[[CheckData], bool] = lambda check: True
        # Frames on their way to a user, which a test may hold back or tamper with.
        self.inbox: deque[tuple[str, str | bytes]] = deque()
        self.tamper: Callable[[str, Frame], Frame] | None = None
        # Frames for these users wait in ``held`` instead of being delivered.
        self.hold: set[str] = set()
        self.held: list[tuple[str, str | bytes]] = []

    def encode(self, frame: Frame) -> str | bytes:
        return encode_binary(frame) if self.serializer.binary else encode_text(frame)

    def decode(self, data: str | bytes) -> Frame:
        return decode_binary(data) if isinstance(data, bytes) else decode_text(data)

    def add(self, creator: bool = False, suite: Any = None, **options: Any) -> str:
        suite = suite or self.suite
        session = RoomSession(
            suite=suite,
            serializer=self.serializer,
            identity=suite.generate_identity(),
            room_code=self.ticket.room_code,
            options=RoomOptions(**options),
            room_key=suite.new_room_key() if creator else None,
            clock=self.clock,
        )
        secret = self.ticket.creator_secret if creator else None
        result = self.relay.join(self.ticket.room_code, secret)
        assert not isinstance(result, JoinRefused), result
        user_id, actions = result
        self.sessions[user_id] = session
        self.notices[user_id] = []
        self._relay_actions(actions)
        return user_id

    def _relay_actions(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.inbox.append((action.user_id, action.frame))
            elif isinstance(action, Broadcast):
                self.inbox.extend((user, action.frame) for user in action.user_ids)
            elif isinstance(action, Close):
                self.closed[action.user_id] = (action.code, action.reason)
                self.sessions.pop(action.user_id, None)

    def run(self, actions: list[Any], user_id: str) -> None:
        for action in actions:
            if isinstance(action, SendFrame):
                frame = self.encode(action.frame)
                self._relay_actions(self.relay.receive(user_id, frame))
            elif isinstance(action, Notice):
                self.notices[user_id].append(action)
            elif isinstance(action, CheckData):
                session = self.sessions[user_id]
                answer = self.accept(action)
                self.run(
                    session.data_checked(action.kind, action.user_id, answer), user_id
                )
            elif isinstance(action, Leave):
                self._relay_actions(self.relay.leave(user_id, action.reason))

    def deliver(self, limit: int = 1000) -> None:
        for _ in range(limit):
            if not self.inbox:
                return
            user_id, text = self.inbox.popleft()
            if user_id in self.hold:
                self.held.append((user_id, text))
                continue
            session = self.sessions.get(user_id)
            if session is None:
                continue
            frame = self.decode(text)
            if self.tamper is not None:
                frame = self.tamper(user_id, frame)
            self.run(session.receive(frame), user_id)
        raise AssertionError("frames kept flowing")

    def events(self, user_id: str, name: str) -> list[tuple[Any, ...]]:
        return [n.args for n in self.notices[user_id] if n.event == name]

    def code_for(self, viewer: str, other: str) -> str:
        peer = self.sessions[viewer].peers[other]
        assert peer.verification_code is not None
        return peer.verification_code

    def verify(self, creator: str, joiner: str) -> None:
        matched, actions = self.sessions[creator].verify_user(
            joiner, self.code_for(joiner, creator)
        )
        assert matched
        self.run(actions, creator)
        self.deliver()


def room_with_joiner(settings: Settings | None = None) -> tuple[Room, str, str]:
    room = Room(settings)
    creator = room.add(creator=True)
    joiner = room.add()
    room.deliver()
    return room, creator, joiner


def test_codes_match_both_sides() -> None:
    room, creator, joiner = room_with_joiner()
    assert room.code_for(creator, joiner) == room.code_for(joiner, creator)
    assert room.sessions[joiner].state is ConnectionState.PENDING_VERIFICATION
    room.verify(creator, joiner)
    assert room.sessions[joiner].state is ConnectionState.CONNECTED


def test_swapped_key_changes_code() -> None:
    """A relay that replies to the joiner with its own keys cannot match the codes."""
    room = Room()
    creator = room.add(creator=True)
    joiner = room.add()
    mallory_identity = room.suite.generate_identity()
    mallory_fields = room.suite.public_fields(mallory_identity)
    # Keep the joiner's encryption key so the creator's reply still reaches it.
    del mallory_fields["publicEncryptKey"]

    def swap_keys(user_id: str, frame: Frame) -> Frame:
        if user_id == creator and "D" in frame:
            message = room.serializer.loads(frame["D"])
            message.update(mallory_fields)
            message["signature"] = room.suite.sign_exchange(mallory_identity)
            return {**frame, "D": room.serializer.dumps(message)}
        return frame

    room.tamper = swap_keys
    room.deliver()
    assert room.code_for(creator, joiner) != room.code_for(joiner, creator)
    matched, _ = room.sessions[creator].verify_user(
        joiner, room.code_for(joiner, creator)
    )
    assert not matched


def test_tampered_room_message_reported() -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)

    def flip(user_id: str, frame: Frame) -> Frame:
        if "E" in frame:
            data = bytearray(frame["E"])
            data[0] ^= 1
            return {**frame, "E": bytes(data)}
        return frame

    room.tamper = flip
    room.run([room.sessions[creator].seal_room_message({"text": "hi"})], creator)
    room.deliver()
    errors = room.events(joiner, "on_error")
    assert len(errors) == 1
    assert isinstance(errors[0][0], DecryptionError)
    assert room.events(joiner, "on_message") == []


@pytest.mark.parametrize("field", ["P", "G", "K", "V"])
def test_tampered_direct_message_reported(field: str) -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)

    def flip(user_id: str, frame: Frame) -> Frame:
        if field in frame:
            data = bytearray(frame[field])
            data[-1] ^= 1
            return {**frame, field: bytes(data)}
        return frame

    room.tamper = flip
    room.run(
        [room.sessions[joiner].seal_direct_message(creator, {"text": "x"})], joiner
    )
    room.deliver()
    errors = room.events(creator, "on_error")
    assert len(errors) == 1
    assert isinstance(errors[0][0], DecryptionError)
    assert room.events(creator, "on_message") == []


def test_room_messages_buffered_until_key() -> None:
    room, creator, joiner = room_with_joiner()
    second = room.add()
    room.deliver()
    room.verify(creator, joiner)
    # The second joiner is verified by the relay but gets no room key yet.
    session = room.sessions[second]
    room.relay.rooms[room.ticket.room_code].members[second] = True
    for n in range(3):
        room.run([room.sessions[creator].seal_room_message({"n": n})], creator)
    room.deliver()
    assert room.events(second, "on_message") == []
    assert session.state is ConnectionState.PENDING_VERIFICATION

    room.verify(creator, second)
    messages = [args[0] for args in room.events(second, "on_message")]
    assert [m.data["n"] for m in messages] == [0, 1, 2]


def test_buffer_drops_old_and_excess() -> None:
    room, creator, joiner = room_with_joiner()
    second = room.add()
    room.deliver()
    room.verify(creator, joiner)
    room.sessions[second]._buffer = type(room.sessions[second]._buffer)(maxlen=2)
    room.relay.rooms[room.ticket.room_code].members[second] = True
    room.run([room.sessions[creator].seal_room_message({"n": 0})], creator)
    room.deliver()
    room.clock.now += 120
    for n in (1, 2, 3):
        room.run([room.sessions[creator].seal_room_message({"n": n})], creator)
    room.deliver()
    room.verify(creator, second)
    messages = [args[0] for args in room.events(second, "on_message")]
    assert [m.data["n"] for m in messages] == [2, 3]


def test_x3_before_verification_kicks() -> None:
    room, creator, joiner = room_with_joiner()
    session = room.sessions[joiner]
    peer = session.peers[creator]
    early = session._direct(peer, {"type": "_X3"})
    room.run([early], joiner)
    room.deliver()
    assert room.closed[joiner] == (1000, "kicked")
    errors = room.events(creator, "on_error")
    assert isinstance(errors[0][0], VerificationError)


def test_clear_handshake_after_x0_rejected() -> None:
    room, creator, joiner = room_with_joiner()
    session = room.sessions[joiner]
    clear = room.serializer.dumps({"type": "_X3", "sender": joiner, "senderTime": 1})
    room.run([SendFrame({"D": clear, "U": creator.encode()})], joiner)
    room.deliver()
    errors = room.events(creator, "on_error")
    assert len(errors) == 1
    assert isinstance(errors[0][0], ProtocolError)
    assert session.state is ConnectionState.PENDING_VERIFICATION


def test_room_key_only_from_creator() -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)
    second = room.add()
    room.deliver()
    # A verified joiner cannot hand out a room key: it never exchanged keys with
    # the newcomer, so the newcomer cannot even open its frames.
    forged = room.serializer.dumps(
        {"type": "_X4", "sharedKey": "AAAA", "sender": joiner}
    )
    room.run([SendFrame({"D": forged, "U": second.encode()})], joiner)
    room.deliver()
    assert room.sessions[second].room_key is None
    assert room.events(second, "on_error")


def test_rejected_public_data_kicks() -> None:
    room = Room()
    room.accept = lambda check: check.kind != "public"
    creator = room.add(creator=True)
    joiner = room.add(public_data={"name": "Mallory"})
    room.deliver()
    assert room.closed[joiner] == (1000, "kicked")
    assert room.sessions[creator].peers == {}


def test_timing_from_relay_time() -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)
    room.run([room.sessions[creator].seal_room_message({"text": "t"})], creator)
    room.clock.now += 0.25
    room.deliver()
    (message,) = room.events(joiner, "on_message")[0]
    assert isinstance(message, Message)
    assert message.delay == 250
    assert message.offset == pytest.approx(-125)
    assert message.adjusted == pytest.approx(room.clock.now * 1000 - 250 - 125)


@pytest.mark.parametrize(
    "data",
    [{"sender": "someone else"}, {"senderTime": 1}, {"type": "_X4"}],
)
def test_reserved_message_keys_rejected(data: dict[str, Any]) -> None:
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)
    with pytest.raises(ValueError, match=r"reserved|set by roupn"):
        room.sessions[creator].seal_room_message(data)
