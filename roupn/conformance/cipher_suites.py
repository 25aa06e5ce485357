"""Conformance tests for cipher suites: handshake keys, codes, seal, open, tamper."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..errors import CryptoError, DecryptionError
from ..interfaces import CipherSuite, Identity, MessageContext, PeerKeys
from ..plugins import BackendKind
from ..settings import Settings
from .rooms import registered_name, run_room

__all__ = ["CipherSuiteConformance"]

# Direct messages of some suites cost several RSA operations, so examples stay few.
# Each example gets fresh keys from the arguments, so a shared fixture is fine.
ROUND_TRIPS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
    ],
)

ROOM_CODE = "ROOMAA"
OTHER_ROOM_CODE = "ROOMBB"

# Identities are slow to make for some suites (RSA-4096), so each suite class gets
# three, made once per test run and shared by its tests.
_IDENTITIES: dict[type[Any], list[Identity]] = {}


def _identities(suite: CipherSuite) -> list[Identity]:
    identities = _IDENTITIES.get(type(suite))
    if identities is None:
        identities = [suite.generate_identity() for _ in range(3)]
        _IDENTITIES[type(suite)] = identities
    return identities


def _flip_bit(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


class Members:
    """Three members (alice, bob, carol) of one suite, with each other's keys."""

    def __init__(self, suite: CipherSuite) -> None:
        self.suite = suite
        self.alice, self.bob, self.carol = _identities(suite)
        self.alice_peer = suite.load_peer(suite.public_fields(self.alice))
        self.bob_peer = suite.load_peer(suite.public_fields(self.bob))
        self.carol_peer = suite.load_peer(suite.public_fields(self.carol))
        self.alice_id = str(uuid.uuid4())

    def direct_context(
        self, identity: Identity, peer: PeerKeys, counter: int = 1
    ) -> MessageContext:
        """Return the context of a direct message between ``identity`` and ``peer``.

        The sender is always alice's id; the pairwise key is that of the pair.
        """
        return MessageContext(
            room_code=ROOM_CODE,
            sender_id=self.alice_id,
            counter=counter,
            pairwise_key=self.suite.pairwise_key(identity, peer, ROOM_CODE),
        )

    def room_context(self, counter: int = 1, **changes: Any) -> MessageContext:
        """Return the context of a room message alice sends."""
        fields: dict[str, Any] = {
            "room_code": ROOM_CODE,
            "sender_id": self.alice_id,
            "epoch": 0,
            "counter": counter,
            **changes,
        }
        return MessageContext(**fields)


class CipherSuiteConformance:
    """Tests for a :class:`~roupn.interfaces.CipherSuite`.

    Provide a ``cipher_suite`` fixture that returns the suite to test. Each
    message is sealed and opened with a :class:`~roupn.interfaces.MessageContext`,
    as the client does. A suite whose room messages name their sender (through
    :meth:`~roupn.interfaces.CipherSuite.room_header`) must also reject a message
    opened in another room or key epoch.
    """

    @pytest.fixture
    def cipher_suite(self) -> CipherSuite:
        raise NotImplementedError(
            "define a 'cipher_suite' fixture in your subclass of CipherSuiteConformance"
        )

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def members(self, cipher_suite: CipherSuite) -> Members:
        return Members(cipher_suite)

    # The interface.

    def test_matches_interface(self, cipher_suite: CipherSuite) -> None:
        assert isinstance(cipher_suite, CipherSuite)
        assert isinstance(cipher_suite.name, str)
        assert cipher_suite.name
        for fields in (cipher_suite.room_fields, cipher_suite.direct_fields):
            assert isinstance(fields, tuple)
            assert fields
            for key in fields:
                assert isinstance(key, str)
                assert len(key) == 1, f"frame key {key!r} is not one character"
        assert isinstance(cipher_suite.commits_keys, bool)
        assert isinstance(cipher_suite.rekeys, bool)

    # Handshake keys.

    def test_public_fields_are_text(self, members: Members) -> None:
        suite = members.suite
        fields = suite.public_fields(members.alice)
        assert fields
        for name, value in fields.items():
            assert isinstance(name, str)
            assert isinstance(value, str)
            assert value, f"public field {name!r} is empty"
        assert fields != suite.public_fields(members.bob)

    def test_exchange_signature_verifies(self, members: Members) -> None:
        suite = members.suite
        assert suite.verify_exchange(
            members.alice_peer, suite.sign_exchange(members.alice)
        )
        assert not suite.verify_exchange(
            members.alice_peer, suite.sign_exchange(members.bob)
        )

    @pytest.mark.parametrize(
        "signature", [None, 42, b"bytes", "", "not base64!", "QUJD"]
    )
    def test_exchange_signature_rejects_malformed(
        self, members: Members, signature: Any
    ) -> None:
        assert members.suite.verify_exchange(members.alice_peer, signature) is False

    def test_load_peer_rejects_missing_field(self, members: Members) -> None:
        suite = members.suite
        fields = suite.public_fields(members.alice)
        for name in fields:
            partial = {key: value for key, value in fields.items() if key != name}
            with pytest.raises(CryptoError):
                suite.load_peer(partial)

    @pytest.mark.parametrize("value", [None, 42, "", "not base64!", "QUJD"])
    def test_load_peer_rejects_malformed_field(
        self, members: Members, value: Any
    ) -> None:
        suite = members.suite
        fields: dict[str, Any] = dict(suite.public_fields(members.alice))
        for name in fields:
            with pytest.raises(CryptoError):
                suite.load_peer({**fields, name: value})

    def test_load_peer_ignores_other_fields(self, members: Members) -> None:
        suite = members.suite
        fields = {**suite.public_fields(members.alice), "publicData": {"a": 1}}
        peer = suite.load_peer(fields)
        assert suite.verify_exchange(peer, suite.sign_exchange(members.alice))

    def test_pairwise_keys_agree(self, members: Members) -> None:
        suite = members.suite
        key = suite.pairwise_key(members.alice, members.bob_peer, ROOM_CODE)
        assert isinstance(key, bytes)
        assert key == suite.pairwise_key(members.bob, members.alice_peer, ROOM_CODE)
        assert key != suite.pairwise_key(members.alice, members.carol_peer, ROOM_CODE)
        assert key != suite.pairwise_key(members.bob, members.carol_peer, ROOM_CODE)

    @pytest.mark.parametrize("length", [1, 6, 8, 32])
    def test_verification_codes_agree(self, members: Members, length: int) -> None:
        suite = members.suite
        alice_key = suite.pairwise_key(members.alice, members.bob_peer, ROOM_CODE)
        bob_key = suite.pairwise_key(members.bob, members.alice_peer, ROOM_CODE)
        code = suite.verification_code(ROOM_CODE, alice_key, length)
        assert isinstance(code, str)
        assert len(code) == length
        assert code == suite.verification_code(ROOM_CODE, bob_key, length)

    def test_code_depends_on_room_and_key(self, members: Members) -> None:
        suite = members.suite
        key = suite.pairwise_key(members.alice, members.bob_peer, ROOM_CODE)
        other_key = suite.pairwise_key(members.alice, members.carol_peer, ROOM_CODE)
        code = suite.verification_code(ROOM_CODE, key, 32)
        assert code != suite.verification_code(OTHER_ROOM_CODE, key, 32)
        assert code != suite.verification_code(ROOM_CODE, other_key, 32)

    @pytest.mark.parametrize("length", [-1, 0, 33, 100])
    def test_verification_code_rejects_length(
        self, members: Members, length: int
    ) -> None:
        suite = members.suite
        key = suite.pairwise_key(members.alice, members.bob_peer, ROOM_CODE)
        with pytest.raises(ValueError):
            suite.verification_code(ROOM_CODE, key, length)

    def test_commitment_checks_keys(self, members: Members) -> None:
        suite = members.suite
        if not suite.commits_keys:
            pytest.skip("the suite does not commit to keys before revealing them")
        bob_fields = suite.public_fields(members.bob)
        commitment = suite.commitment(members.bob)
        assert suite.check_commitment(bob_fields, commitment)
        assert not suite.check_commitment(
            suite.public_fields(members.alice), commitment
        )
        for garbage in (None, 42, "", "not base64!"):
            assert not suite.check_commitment(bob_fields, garbage)

    # Room keys.

    def test_new_room_keys_are_random(self, cipher_suite: CipherSuite) -> None:
        keys = {cipher_suite.new_room_key() for _ in range(16)}
        assert len(keys) == 16
        for key in keys:
            assert isinstance(key, bytes)
            assert len(key) >= 16, "a room key shorter than 128 bits"

    def test_room_key_export_import(self, cipher_suite: CipherSuite) -> None:
        key = cipher_suite.new_room_key()
        exported = cipher_suite.export_room_key(key)
        assert isinstance(exported, str)
        assert cipher_suite.import_room_key(exported) == key

    @pytest.mark.parametrize("value", [None, 42, b"bytes", "", "not base64!", "QUJD"])
    def test_import_room_key_rejects(
        self, cipher_suite: CipherSuite, value: Any
    ) -> None:
        with pytest.raises(CryptoError):
            cipher_suite.import_room_key(value)

    # Room messages.

    @ROUND_TRIPS
    @given(plaintext=st.binary(max_size=4096), counter=st.integers(1, 2**31))
    def test_room_round_trip(
        self, members: Members, plaintext: bytes, counter: int
    ) -> None:
        suite = members.suite
        room_key = suite.new_room_key()
        context = members.room_context(counter)
        sealed = suite.seal_room(room_key, plaintext, context)
        assert set(sealed) == set(suite.room_fields)
        for value in sealed.values():
            assert type(value) is bytes
        assert suite.open_room(room_key, sealed, context) == plaintext

    def test_room_header_names_sender(self, members: Members) -> None:
        suite = members.suite
        context = members.room_context(counter=7, epoch=3)
        header = suite.room_header(suite.seal_room(suite.new_room_key(), b"x", context))
        if header.sender_id is None:
            assert header.counter is None
            return
        assert header.sender_id == context.sender_id
        assert header.epoch == 3
        assert header.counter == 7

    def test_room_seal_is_not_repeated(self, members: Members) -> None:
        suite = members.suite
        room_key = suite.new_room_key()
        first = suite.seal_room(room_key, b"same", members.room_context(1))
        second = suite.seal_room(room_key, b"same", members.room_context(2))
        assert first != second

    def test_room_open_with_wrong_key_fails(self, members: Members) -> None:
        suite = members.suite
        context = members.room_context()
        sealed = suite.seal_room(suite.new_room_key(), b"secret", context)
        with pytest.raises(DecryptionError):
            suite.open_room(suite.new_room_key(), sealed, context)

    def test_room_open_tampered_fails(self, members: Members) -> None:
        suite = members.suite
        room_key = suite.new_room_key()
        context = members.room_context()
        sealed = suite.seal_room(room_key, b"a secret message", context)
        for field, value in sealed.items():
            for index in sorted({0, len(value) // 2, len(value) - 1}):
                changed = {**sealed, field: _flip_bit(value, index)}
                with pytest.raises(DecryptionError):
                    suite.open_room(room_key, changed, context)

    def test_room_open_cut_or_missing_fails(self, members: Members) -> None:
        suite = members.suite
        room_key = suite.new_room_key()
        context = members.room_context()
        sealed = suite.seal_room(room_key, b"a secret message", context)
        for field, value in sealed.items():
            for cut in (b"", value[:1], value[:-1]):
                with pytest.raises(DecryptionError):
                    suite.open_room(room_key, {**sealed, field: cut}, context)
            missing = {key: item for key, item in sealed.items() if key != field}
            with pytest.raises(DecryptionError):
                suite.open_room(room_key, missing, context)

    def test_room_message_bound_to_context(self, members: Members) -> None:
        suite = members.suite
        room_key = suite.new_room_key()
        context = members.room_context()
        sealed = suite.seal_room(room_key, b"for this room", context)
        if suite.room_header(sealed).sender_id is None:
            pytest.skip("the suite's room messages name no sender, room or epoch")
        with pytest.raises(DecryptionError):
            suite.open_room(
                room_key, sealed, members.room_context(room_code=OTHER_ROOM_CODE)
            )

    # Direct messages.

    @ROUND_TRIPS
    @given(plaintext=st.binary(max_size=4096))
    def test_direct_round_trip(self, members: Members, plaintext: bytes) -> None:
        suite = members.suite
        sealed = suite.seal_direct(
            members.alice,
            members.bob_peer,
            plaintext,
            members.direct_context(members.alice, members.bob_peer),
        )
        assert set(sealed) == set(suite.direct_fields)
        for value in sealed.values():
            assert type(value) is bytes
        opened = suite.open_direct(
            members.bob,
            members.alice_peer,
            sealed,
            members.direct_context(members.bob, members.alice_peer),
        )
        assert opened == plaintext
        assert suite.verify_direct(members.alice_peer, sealed)

    def test_direct_open_by_other_receiver_fails(self, members: Members) -> None:
        suite = members.suite
        sealed = suite.seal_direct(
            members.alice,
            members.bob_peer,
            b"for bob",
            members.direct_context(members.alice, members.bob_peer),
        )
        with pytest.raises(DecryptionError):
            suite.open_direct(
                members.carol,
                members.alice_peer,
                sealed,
                members.direct_context(members.carol, members.alice_peer),
            )

    def test_direct_open_from_other_sender_fails(self, members: Members) -> None:
        # Carol's message presented to bob as alice's.
        suite = members.suite
        sealed = suite.seal_direct(
            members.carol,
            members.bob_peer,
            b"from carol",
            members.direct_context(members.carol, members.bob_peer),
        )
        with pytest.raises(DecryptionError):
            suite.open_direct(
                members.bob,
                members.alice_peer,
                sealed,
                members.direct_context(members.bob, members.alice_peer),
            )

    def test_direct_open_tampered_fails(self, members: Members) -> None:
        suite = members.suite
        sealed = suite.seal_direct(
            members.alice,
            members.bob_peer,
            b"a secret message",
            members.direct_context(members.alice, members.bob_peer),
        )
        context = members.direct_context(members.bob, members.alice_peer)
        for field, value in sealed.items():
            for index in sorted({0, len(value) // 2, len(value) - 1}):
                changed = {**sealed, field: _flip_bit(value, index)}
                with pytest.raises(DecryptionError):
                    suite.open_direct(members.bob, members.alice_peer, changed, context)
            missing = {key: item for key, item in sealed.items() if key != field}
            with pytest.raises(DecryptionError):
                suite.open_direct(members.bob, members.alice_peer, missing, context)

    # In a room.

    @pytest.mark.anyio
    async def test_room_end_to_end(self, cipher_suite: CipherSuite) -> None:
        # Skipped unless the suite is registered under its name.
        name = registered_name(BackendKind.CIPHER_SUITE, cipher_suite)
        await run_room(Settings(transport="memory", cipher_suite=name))
