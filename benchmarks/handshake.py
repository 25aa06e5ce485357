"""A whole join handshake between two room sessions through the relay's state machine.

Nothing goes over a socket: frames pass between :class:`~roupn.session.RoomSession`
objects and :class:`~roupn.relay.RelayState` through a queue, encoded and decoded as
frames, so a run costs the cipher suite, the serializer, the framing and the
relay's routing, but no I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from roupn.frames import Frame, decode_binary, decode_text, encode_binary, encode_text
from roupn.interfaces import CipherSuite, Identity, Serializer
from roupn.messages import ConnectionState
from roupn.relay import Broadcast, Close, JoinRefused, RelayState, Send
from roupn.session import CheckData, Leave, Notice, RoomOptions, RoomSession, SendFrame

__all__ = ["HandshakeError", "run_join_handshake"]

# Frames a handshake may take before it counts as stuck; one takes about a dozen.
MAX_FRAMES = 200


class HandshakeError(RuntimeError):
    """The handshake failed or did not finish, so there is nothing to measure."""


class _Room:
    """One relay and the sessions of its members, passing frames through a queue."""

    def __init__(self, suite: CipherSuite, serializer: Serializer) -> None:
        self.suite = suite
        self.serializer = serializer
        self.relay = RelayState(
            dumps=serializer.dumps, loads=serializer.loads, binary=serializer.binary
        )
        self.ticket = self.relay.create_room()
        self.sessions: dict[str, RoomSession] = {}
        self.codes: dict[str, str] = {}  # member id to the code shown to that member
        self.inbox: deque[tuple[str, str | bytes]] = deque()

    def join(self, identity: Identity, creator: bool) -> str:
        session = RoomSession(
            suite=self.suite,
            serializer=self.serializer,
            identity=identity,
            room_code=self.ticket.room_code,
            options=RoomOptions(
                public_data={"name": "creator" if creator else "joiner"}
            ),
            room_key=self.suite.new_room_key() if creator else None,
        )
        secret = self.ticket.creator_secret if creator else None
        joined = self.relay.join(self.ticket.room_code, secret)
        if isinstance(joined, JoinRefused):
            raise HandshakeError(f"the relay rejected the join: {joined.reason}")
        user_id, actions = joined
        self.sessions[user_id] = session
        self.route(actions)
        return user_id

    def route(self, actions: list[Any]) -> None:
        """Queue the relay's frames; a closed socket fails the handshake."""
        for action in actions:
            if isinstance(action, Send):
                self.inbox.append((action.user_id, action.frame))
            elif isinstance(action, Broadcast):
                self.inbox.extend((user, action.frame) for user in action.user_ids)
            elif isinstance(action, Close):
                raise HandshakeError(
                    f"the relay closed member {action.user_id}: {action.reason}"
                )

    def run(self, user_id: str, actions: list[Any]) -> None:
        """Carry out a session's actions, accepting every public and private data."""
        session = self.sessions[user_id]
        for action in actions:
            if isinstance(action, SendFrame):
                self.route(self.relay.receive(user_id, self.encode(action.frame)))
            elif isinstance(action, CheckData):
                self.run(
                    user_id, session.data_checked(action.kind, action.user_id, True)
                )
            elif isinstance(action, Notice):
                if action.event == "on_error":
                    raise HandshakeError(f"member {user_id} failed: {action.args[0]}")
                if action.event == "on_user_verification_code":
                    self.codes[user_id] = action.args[0]["code"]
            elif isinstance(action, Leave):
                raise HandshakeError(f"member {user_id} left: {action.reason}")

    def encode(self, frame: Frame) -> str | bytes:
        # A binary serializer's frames are binary, as the client sends them.
        return encode_binary(frame) if self.serializer.binary else encode_text(frame)

    def deliver_one(self) -> None:
        user_id, data = self.inbox.popleft()
        frame = decode_binary(data) if isinstance(data, bytes) else decode_text(data)
        self.run(user_id, self.sessions[user_id].receive(frame))


def run_join_handshake(
    suite: CipherSuite,
    serializer: Serializer,
    creator_identity: Identity,
    joiner_identity: Identity,
) -> None:
    """Run one join, from the creator joining to the joiner being CONNECTED.

    The creator enters the code that the joiner's session shows as soon as both
    sides have one, as a user reading it aloud would, and every data check passes.
    The identities are made beforehand, so key pair generation is not part of it.

    Raises:
        HandshakeError: a member failed, left or was closed, or the handshake took
            more than ``MAX_FRAMES`` frames.
    """
    room = _Room(suite, serializer)
    creator_id = room.join(creator_identity, creator=True)
    joiner_id = room.join(joiner_identity, creator=False)
    creator = room.sessions[creator_id]
    joiner = room.sessions[joiner_id]
    verified = False
    for _ in range(MAX_FRAMES):
        if joiner.state is ConnectionState.CONNECTED:
            return
        if not verified and joiner_id in room.codes and creator_id in room.codes:
            matched, actions = creator.verify_user(joiner_id, room.codes[joiner_id])
            if not matched:
                raise HandshakeError("the creator's and joiner's codes differ")
            verified = True
            room.run(creator_id, actions)
            continue
        if not room.inbox:
            break
        room.deliver_one()
    raise HandshakeError(
        f"the joiner is {joiner.state}, not CONNECTED, after the handshake's frames"
    )
