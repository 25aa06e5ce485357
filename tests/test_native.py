"""The native profile against a hostile relay: swapped and ground keys, replayed,
reordered, dropped and moved messages, and members removed from the room."""

from __future__ import annotations

from typing import Any

import pytest
from test_session import Room

import roupn
from roupn import Settings
from roupn.conformance import CipherSuiteConformance
from roupn.errors import (
    DecryptionError,
    ProfileError,
    ReplayError,
    VerificationError,
)
from roupn.frames import Frame, decode_binary
from roupn.interfaces import CipherSuite, MessageContext
from roupn.testing import EventRecorder

NATIVE = Settings.native()


def errors_of(room: Room, user_id: str) -> list[BaseException]:
    return [args[0] for args in room.events(user_id, "on_error")]


def messages_of(room: Room, user_id: str) -> list[Any]:
    return [args[0].data for args in room.events(user_id, "on_message")]


def verified_room(members: int = 1) -> tuple[Room, str, list[str]]:
    room = Room(NATIVE)
    creator = room.add(creator=True)
    joiners = []
    for _ in range(members):
        joiner = room.add()
        room.deliver()
        room.verify(creator, joiner)
        joiners.append(joiner)
    return room, creator, joiners


def send_room(room: Room, sender: str, data: dict[str, Any]) -> None:
    room.run([room.sessions[sender].seal_room_message(data)], sender)


def test_handshake_and_messages() -> None:
    room, creator, (joiner,) = verified_room()
    assert room.code_for(creator, joiner) == room.code_for(joiner, creator)
    assert room.sessions[joiner].state is roupn.ConnectionState.CONNECTED
    send_room(room, joiner, {"n": 1})
    room.run([room.sessions[creator].seal_direct_message(joiner, {"d": 2})], creator)
    room.deliver()
    assert messages_of(room, creator)[-1]["n"] == 1
    assert messages_of(room, joiner)[-1]["d"] == 2
    assert errors_of(room, creator) == []
    assert errors_of(room, joiner) == []


def test_joiner_commits_before_keys() -> None:
    room = Room(NATIVE)
    creator = room.add(creator=True)
    room.add()
    room.hold.add(creator)
    room.deliver()
    hellos = [room.decode(frame) for _, frame in room.held]
    hellos = [frame for frame in hellos if "D" in frame]
    message = room.serializer.loads(hellos[-1]["D"])
    assert message["type"] == "_X0"
    assert "commitment" in message
    assert "publicExchangeKey" not in message
    assert message["profile"] == {"cipherSuite": "nacl", "serializer": "msgpack"}


def test_swapped_creator_keys_change_codes() -> None:
    room = Room(NATIVE)
    creator = room.add(creator=True)
    joiner = room.add()
    mallory = room.suite.generate_identity()

    def swap(user_id: str, frame: Frame) -> Frame:
        if user_id == joiner and "D" in frame:
            message = room.serializer.loads(frame["D"])
            if message.get("type") == "_X1":
                message.update(room.suite.public_fields(mallory))
                message["signature"] = room.suite.sign_exchange(mallory)
                return {**frame, "D": room.serializer.dumps(message)}
        return frame

    room.tamper = swap
    room.deliver()
    assert room.code_for(creator, joiner) != room.code_for(joiner, creator)
    matched, _ = room.sessions[creator].verify_user(
        joiner, room.code_for(joiner, creator)
    )
    assert not matched


def test_ground_keys_fail_commitment() -> None:
    """A relay that reveals other keys than the committed ones, to aim at a code."""
    room = Room(NATIVE)
    creator = room.add(creator=True)
    joiner = room.add()
    ground = [room.suite.generate_identity() for _ in range(20)]

    def grind(user_id: str, frame: Frame) -> Frame:
        if user_id == creator and "D" in frame:
            message = room.serializer.loads(frame["D"])
            if message.get("type") == "_XR":
                chosen = ground[0]
                message.update(room.suite.public_fields(chosen))
                message["signature"] = room.suite.sign_exchange(chosen)
                return {**frame, "D": room.serializer.dumps(message)}
        return frame

    room.tamper = grind
    room.deliver()
    assert room.closed[joiner] == (1000, "kicked")
    assert any(isinstance(e, VerificationError) for e in errors_of(room, creator))
    assert room.events(creator, "on_user_verification_code") == []


def test_profile_mismatch_names_both() -> None:
    room = Room(NATIVE)
    creator = room.add(creator=True)
    webcrypto = Settings(cipher_suite="webcrypto").load_cipher_suite()
    joiner = room.add(suite=webcrypto)
    room.deliver()
    (error,) = [e for e in errors_of(room, creator) if isinstance(e, ProfileError)]
    assert "webcrypto/msgpack" in str(error)
    assert "nacl/msgpack" in str(error)
    assert room.closed[joiner] == (1000, "kicked")


def held_frames(room: Room, receiver: str) -> list[str | bytes]:
    """Take the frames waiting for ``receiver`` out of the relay's queue."""
    held = [frame for user, frame in room.inbox if user == receiver]
    room.inbox = type(room.inbox)((u, f) for u, f in room.inbox if u != receiver)
    return held


def test_replayed_message_rejected() -> None:
    room, creator, (joiner,) = verified_room()
    send_room(room, creator, {"n": 1})
    (frame,) = held_frames(room, joiner)
    room.inbox.extend([(joiner, frame), (joiner, frame)])
    room.deliver()
    assert messages_of(room, joiner) == [
        {"n": 1, "sender": creator, "senderTime": 1_800_000_000_000}
    ]
    assert isinstance(errors_of(room, joiner)[-1], ReplayError)


def test_reordered_message_rejected() -> None:
    room, creator, (joiner,) = verified_room()
    for n in (1, 2):
        send_room(room, creator, {"n": n})
    first, second = held_frames(room, joiner)
    room.inbox.extend([(joiner, second), (joiner, first)])
    room.deliver()
    assert [m["n"] for m in messages_of(room, joiner)] == [2]
    assert any(isinstance(e, ReplayError) for e in errors_of(room, joiner))


def test_dropped_message_reported() -> None:
    room, creator, (joiner,) = verified_room()
    for n in (1, 2, 3):
        send_room(room, creator, {"n": n})
    first, _, third = held_frames(room, joiner)
    room.inbox.extend([(joiner, first), (joiner, third)])
    room.deliver()
    assert [m["n"] for m in messages_of(room, joiner)] == [1, 3]
    (error,) = errors_of(room, joiner)
    assert isinstance(error, ReplayError)
    assert "2 to 2" in str(error)


@pytest.mark.parametrize("cut", [1, 17, 30])
def test_truncated_ciphertext_rejected(cut: int) -> None:
    room, creator, (joiner,) = verified_room()
    send_room(room, creator, {"n": 1})
    (frame,) = held_frames(room, joiner)
    decoded = room.decode(frame)
    decoded["E"] = decoded["E"][:-cut]
    room.inbox.append((joiner, room.encode(decoded)))
    room.deliver()
    assert messages_of(room, joiner) == []
    assert isinstance(errors_of(room, joiner)[-1], DecryptionError)


def test_relabelled_sender_rejected() -> None:
    room, creator, (joiner, other) = verified_room(2)
    send_room(room, creator, {"n": 1})
    (frame,) = held_frames(room, joiner)
    decoded = room.decode(frame)
    other_id = __import__("uuid").UUID(other).bytes
    decoded["E"] = other_id + decoded["E"][16:]
    room.inbox.append((joiner, room.encode(decoded)))
    room.deliver()
    assert messages_of(room, joiner) == []
    assert isinstance(errors_of(room, joiner)[-1], DecryptionError)


def test_message_moved_between_rooms_rejected() -> None:
    suite = NATIVE.load_cipher_suite()
    key = suite.new_room_key()
    sender = "6f1d4c2e-8a9b-4c3d-9e7f-0a1b2c3d4e5f"
    fields = suite.seal_room(key, b"hello", MessageContext("ROOMAA", sender, 0, 1))
    assert suite.open_room(key, fields, MessageContext("ROOMAA", sender)) == b"hello"
    with pytest.raises(DecryptionError):
        suite.open_room(key, fields, MessageContext("ROOMBB", sender))


def test_kicked_member_reads_nothing_new() -> None:
    room, creator, (kept, kicked) = verified_room(2)
    kicked_session = room.sessions[kicked]
    room.run([room.sessions[creator].kick(kicked)], creator)
    room.deliver()
    assert room.closed[kicked] == (1000, "kicked")
    assert room.sessions[creator].epoch == 1
    assert room.sessions[kept].epoch == 1

    # A relay that keeps forwarding to the kicked member gives it nothing to read.
    send_room(room, creator, {"after": "kick"})
    send_room(room, kept, {"also": "after"})
    frames = held_frames(room, kept)
    assert len(frames) == 1
    room.inbox.append((kept, frames[0]))
    room.deliver()
    for sender_frame in frames:
        notices = kicked_session.receive(room.decode(sender_frame))
        assert not [n for n in notices if getattr(n, "event", "") == "on_message"]
    assert messages_of(room, kept)[-1]["after"] == "kick"
    with pytest.raises(DecryptionError):
        fields = room.decode(frames[0])
        room.suite.open_room(
            kicked_session.room_keys[0],
            fields,
            MessageContext(room.ticket.room_code, creator),
        )


def test_future_epoch_waits_for_key() -> None:
    room, creator, (first, second) = verified_room(2)
    third = room.add()
    room.deliver()
    room.verify(creator, third)
    # The creator re-keys when the third member leaves; hold back the new key of
    # the first member so that the second member's new-epoch message arrives first.
    room.hold.add(first)
    room.run([room.sessions[creator].kick(third)], creator)
    room.deliver()
    assert room.sessions[second].epoch == 1
    send_room(room, second, {"epoch": "new"})
    room.deliver()
    assert messages_of(room, first) == []
    room.hold.clear()
    room.inbox.extend(room.held)
    room.deliver()
    assert room.sessions[first].epoch == 1
    assert messages_of(room, first)[-1]["epoch"] == "new"


def test_nacl_suite_keys_and_codes() -> None:
    suite = NATIVE.load_cipher_suite()
    alice, bob = suite.generate_identity(), suite.generate_identity()
    alice_peer = suite.load_peer(suite.public_fields(alice))
    bob_peer = suite.load_peer(suite.public_fields(bob))
    assert suite.verify_exchange(alice_peer, suite.sign_exchange(alice))
    assert not suite.verify_exchange(alice_peer, suite.sign_exchange(bob))
    assert not suite.verify_exchange(alice_peer, "not base64!")
    assert suite.check_commitment(suite.public_fields(bob), suite.commitment(bob))
    assert not suite.check_commitment(suite.public_fields(alice), suite.commitment(bob))
    key = suite.pairwise_key(alice, bob_peer, "ROOMAA")
    assert key == suite.pairwise_key(bob, alice_peer, "ROOMAA")
    assert key != suite.pairwise_key(bob, alice_peer, "ROOMBB")
    for length in (1, 6, 32):
        code = suite.verification_code("ROOMAA", key, length)
        assert len(code) == length
        assert set(code) <= set(roupn.messages.CODE_ALPHABET)
    with pytest.raises(ValueError, match="use 1 to 32"):
        suite.verification_code("ROOMAA", key, 33)
    with pytest.raises(roupn.CryptoError, match="publicSignKey"):
        suite.load_peer(
            {"publicExchangeKey": suite.public_fields(alice)["publicExchangeKey"]}
        )


# A hostile relay on the memory transport, with real clients.


class HostileRelay(roupn.ServerConnector):
    """A relay that replays or reorders the room frames it sends to one user."""

    def __init__(self, mode: str, **options: Any) -> None:
        super().__init__(**options)
        self.mode = mode
        self.victim: str | None = None
        self._held: list[str | bytes] = []

    def _deliver(self, user_id: str, frame: str | bytes) -> None:
        is_room_frame = isinstance(frame, bytes) and "E" in decode_binary(frame)
        if user_id != self.victim or not is_room_frame:
            super()._deliver(user_id, frame)
        elif self.mode == "replay":
            super()._deliver(user_id, frame)
            super()._deliver(user_id, frame)
        elif not self._held:
            self._held.append(frame)
        else:
            super()._deliver(user_id, frame)
            super()._deliver(user_id, self._held.pop())


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["replay", "reorder"])
async def test_hostile_relay_over_memory(mode: str) -> None:
    settings = Settings.native(transport="memory")
    relay = HostileRelay(mode, host="hostile", port=0, settings=settings)
    async with relay:
        alice = roupn.create_client_connector(server_url=relay.url, settings=settings)
        bob = roupn.create_client_connector(server_url=relay.url, settings=settings)
        async with alice, bob:
            alice_events = EventRecorder(alice, 10)
            bob_events = EventRecorder(bob, 10)
            code = await alice.create_room()
            await bob.join_room(code)
            (shown,) = await bob_events.wait_for("on_user_verification_code")
            await alice_events.wait_for("on_user_verification_code")
            assert bob.user_id is not None
            relay.victim = bob.user_id
            assert await alice.verify_user(bob.user_id, shown["code"])
            await bob_events.wait_for(
                "on_connection", lambda state: state is roupn.ConnectionState.CONNECTED
            )
            for n in (1, 2):
                await alice.message_room({"n": n})
            expected = [1, 2] if mode == "replay" else [2]
            await bob_events.wait_for_count("on_message", len(expected))
            (error,) = await bob_events.wait_for("on_error")
            assert isinstance(error, ReplayError)
            received = [args[0].data["n"] for args in bob_events.of("on_message")]
            assert received == expected


# The cipher suite conformance tests.


class TestNaclConformance(CipherSuiteConformance):
    @pytest.fixture
    def cipher_suite(self) -> CipherSuite:
        return NATIVE.load_cipher_suite()
