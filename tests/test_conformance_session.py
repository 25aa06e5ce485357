"""Conformance of the frame codec and webcrypto suite with recorded JavaScript frames.

The recording contains every frame that a JavaScript creator and joiner exchanged
through a relay, their exported keys and the events they reported. Loading the private
keys lets the tests act as either client.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from typing import Any

import pytest
from conftest import load_vector
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from roupn_webcrypto import WebcryptoIdentity, WebcryptoPeer, WebcryptoSuite

from roupn.errors import DecryptionError
from roupn.frames import Frame, decode_text, encode_text

CLIENTS = ("creator", "joiner")
OTHER = {"creator": "joiner", "joiner": "creator"}


@pytest.fixture(scope="module")
def session() -> dict[str, Any]:
    return load_vector("roupn-0.1-session.json")


@pytest.fixture(scope="module")
def suite() -> WebcryptoSuite:
    return WebcryptoSuite()


def recorded_keys(session: dict[str, Any], client: str) -> dict[str, dict[str, Any]]:
    """Return a client's exported keys by WebCrypto algorithm name."""
    keys = session["clients"][client]["keys"]
    return {key["algorithm"]: key for key in keys}


def recorded_public_fields(session: dict[str, Any], client: str) -> dict[str, str]:
    keys = recorded_keys(session, client)
    return {
        "publicEncryptKey": keys["RSA-OAEP"]["publicKey"],
        "publicExchangeKey": keys["ECDH"]["publicKey"],
        "publicSignKey": keys["RSASSA-PKCS1-v1_5"]["publicKey"],
    }


def frames(session: dict[str, Any], client: str, direction: str) -> list[Frame]:
    """Decode a client's recorded frames that went in one direction."""
    recorded = session["clients"][client]["frames"]
    return [
        decode_text(frame["data"]) for frame in recorded if frame["dir"] == direction
    ]


def events(session: dict[str, Any], client: str, name: str) -> list[dict[str, Any]]:
    recorded = session["clients"][client]["events"]
    return [event["data"] for event in recorded if event["event"] == name]


def user_id(session: dict[str, Any], client: str) -> str:
    joined = events(session, client, "onRoomJoin")
    return str(joined[0]["userId"])


def flip_bit(data: bytes) -> bytes:
    """Return ``data`` with the lowest bit of its middle byte flipped."""
    index = len(data) // 2
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.fixture(scope="module")
def identities(session: dict[str, Any]) -> dict[str, WebcryptoIdentity]:
    loaded = {}
    for client in CLIENTS:
        keys = recorded_keys(session, client)
        loaded[client] = WebcryptoSuite.identity_from_private_keys(
            keys["RSA-OAEP"]["privateKey"],
            keys["RSASSA-PKCS1-v1_5"]["privateKey"],
            keys["ECDH"]["privateKey"],
        )
    return loaded


@pytest.fixture(scope="module")
def peers(session: dict[str, Any], suite: WebcryptoSuite) -> dict[str, WebcryptoPeer]:
    return {
        client: suite.load_peer(recorded_public_fields(session, client))
        for client in CLIENTS
    }


@pytest.fixture(scope="module")
def room_key(session: dict[str, Any]) -> bytes:
    return b64decode(recorded_keys(session, "creator")["AES-GCM"]["raw"])


@pytest.fixture(scope="module")
def exchange_message(session: dict[str, Any]) -> dict[str, Any]:
    """The joiner's ``_X0``, the only direct message sent in clear."""
    sent = [frame for frame in frames(session, "joiner", "out") if "D" in frame]
    assert len(sent) == 1
    message: dict[str, Any] = json.loads(sent[0]["D"])
    return message


def open_received_direct(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
    client: str,
) -> list[dict[str, Any]]:
    """Open every encrypted direct message a client received, in order."""
    sender = peers[OTHER[client]]
    opened = []
    for frame in frames(session, client, "in"):
        if "K" in frame:
            plaintext = suite.open_direct(identities[client], sender, frame)
            opened.append(json.loads(plaintext))
    return opened


# Frames.


@pytest.mark.parametrize("client", CLIENTS)
def test_frames_reencode_identically(session: dict[str, Any], client: str) -> None:
    for index, recorded in enumerate(session["clients"][client]["frames"]):
        text = recorded["data"]
        assert encode_text(decode_text(text)) == text, f"frame {index}"


@pytest.mark.parametrize("client", CLIENTS)
def test_binary_fields_have_webcrypto_sizes(
    session: dict[str, Any], client: str
) -> None:
    for direction in ("in", "out"):
        for frame in frames(session, client, direction):
            if "I" in frame:
                assert len(frame["I"]) == 12
            if "V" in frame:
                assert len(frame["V"]) == 12
                assert len(frame["K"]) == 512
                assert len(frame["G"]) == 512


# Keys and the exchange signature.


@pytest.mark.parametrize("client", CLIENTS)
def test_loaded_identity_exports_recorded_keys(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    client: str,
) -> None:
    exported = suite.public_fields(identities[client])
    assert exported == recorded_public_fields(session, client)


def test_exchange_message_carries_joiner_keys(
    session: dict[str, Any], exchange_message: dict[str, Any]
) -> None:
    assert exchange_message["type"] == "_X0"
    for name, value in recorded_public_fields(session, "joiner").items():
        assert exchange_message[name] == value, name


def test_exchange_signature_verifies(
    suite: WebcryptoSuite,
    peers: dict[str, WebcryptoPeer],
    exchange_message: dict[str, Any],
) -> None:
    joiner = suite.load_peer(exchange_message)
    signature = exchange_message["signature"]
    assert suite.verify_exchange(joiner, signature)
    assert not suite.verify_exchange(peers["creator"], signature)


def test_exchange_signature_reproduced(
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    exchange_message: dict[str, Any],
) -> None:
    # RSASSA-PKCS1-v1_5 is deterministic, so the same key signs to the same bytes.
    signature = suite.sign_exchange(identities["joiner"])
    assert signature == exchange_message["signature"]


# Direct messages.


def test_joiner_opens_creator_direct_messages(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
) -> None:
    messages = open_received_direct(session, suite, identities, peers, "joiner")
    assert [message["type"] for message in messages] == ["_X1", "_X2", "_X4"]
    creator_id = user_id(session, "creator")
    for message in messages:
        assert message["sender"] == creator_id


def test_creator_opens_joiner_direct_messages(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
) -> None:
    messages = open_received_direct(session, suite, identities, peers, "creator")
    assert [message["type"] for message in messages] == ["_X3"]
    assert messages[0]["sender"] == user_id(session, "joiner")


@pytest.mark.parametrize("client", CLIENTS)
def test_direct_messages_address_receiver(session: dict[str, Any], client: str) -> None:
    receiver = user_id(session, client).encode()
    for frame in frames(session, client, "in"):
        if "K" in frame or "D" in frame:
            assert frame["U"] == receiver


def test_x1_carries_creator_keys(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
) -> None:
    reply = open_received_direct(session, suite, identities, peers, "joiner")[0]
    assert reply["type"] == "_X1"
    assert "signature" not in reply
    for name, value in recorded_public_fields(session, "creator").items():
        assert reply[name] == value, name


def test_shared_key_is_room_key(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
    room_key: bytes,
) -> None:
    last = open_received_direct(session, suite, identities, peers, "joiner")[-1]
    assert last["type"] == "_X4"
    assert suite.import_room_key(last["sharedKey"]) == room_key
    assert suite.export_room_key(room_key) == last["sharedKey"]


@pytest.mark.parametrize("client", CLIENTS)
def test_signature_covers_raw_ciphertext(
    session: dict[str, Any],
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
    client: str,
) -> None:
    sender = OTHER[client]
    sign_key = peers[sender].sign_key
    for frame in frames(session, client, "in"):
        if "K" not in frame:
            continue

        # The sender's key re-signs the raw P bytes to the recorded G.
        resigned = identities[sender].sign_key.sign(
            frame["P"], padding.PKCS1v15(), hashes.SHA256()
        )
        assert resigned == frame["G"]

        # The base64 text of P, as it appears inside the frame, is not what G signs.
        with pytest.raises(InvalidSignature):
            sign_key.verify(
                frame["G"], b64encode(frame["P"]), padding.PKCS1v15(), hashes.SHA256()
            )


def test_x1_opens_before_creator_keys(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
) -> None:
    # The joiner learns the creator's signing key from inside _X1, so it decrypts
    # first and checks the signature with the keys that the message carries.
    received = [frame for frame in frames(session, "joiner", "in") if "K" in frame]
    reply = json.loads(suite.open_direct(identities["joiner"], None, received[0]))
    assert reply["type"] == "_X1"
    creator = suite.load_peer(reply)
    assert suite.verify_direct(creator, received[0])


@pytest.mark.parametrize("client", CLIENTS)
def test_verify_direct_accepts_recorded_frames(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    peers: dict[str, WebcryptoPeer],
    client: str,
) -> None:
    received = [frame for frame in frames(session, client, "in") if "K" in frame]
    assert received
    for frame in received:
        assert suite.verify_direct(peers[OTHER[client]], frame)
        assert not suite.verify_direct(peers[client], frame)


@pytest.mark.parametrize("field", ["P", "G"])
def test_tampered_direct_signature_rejected(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    peers: dict[str, WebcryptoPeer],
    field: str,
) -> None:
    received = [frame for frame in frames(session, "joiner", "in") if "K" in frame]
    tampered = {**received[0], field: flip_bit(received[0][field])}
    assert not suite.verify_direct(peers["creator"], tampered)


@pytest.mark.parametrize("field", ["V", "K", "P"])
def test_tampered_unchecked_direct_rejected(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    field: str,
) -> None:
    received = [frame for frame in frames(session, "joiner", "in") if "K" in frame]
    tampered = {**received[0], field: flip_bit(received[0][field])}
    with pytest.raises(DecryptionError):
        suite.open_direct(identities["joiner"], None, tampered)


@pytest.mark.parametrize("field", ["V", "K", "P", "G"])
def test_tampered_direct_message_rejected(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
    field: str,
) -> None:
    received = [frame for frame in frames(session, "joiner", "in") if "K" in frame]
    tampered = {**received[0], field: flip_bit(received[0][field])}
    with pytest.raises(DecryptionError):
        suite.open_direct(identities["joiner"], peers["creator"], tampered)


def test_direct_message_from_wrong_sender_rejected(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
) -> None:
    received = [frame for frame in frames(session, "joiner", "in") if "K" in frame]
    with pytest.raises(DecryptionError, match="signature"):
        suite.open_direct(identities["joiner"], peers["joiner"], received[0])


def test_sealed_direct_opens_for_joiner(
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
) -> None:
    plaintext = b'{"type":"_X2","privateData":{"pin":"1234"}}'
    sealed = suite.seal_direct(identities["creator"], peers["joiner"], plaintext)
    assert tuple(sealed) == WebcryptoSuite.direct_fields
    frame = decode_text(encode_text(sealed))
    opened = suite.open_direct(identities["joiner"], peers["creator"], frame)
    assert opened == plaintext


# Pairwise keys and verification codes.


def test_pairwise_keys_agree(
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
) -> None:
    creator_side = suite.pairwise_key(identities["creator"], peers["joiner"])
    joiner_side = suite.pairwise_key(identities["joiner"], peers["creator"])
    assert len(creator_side) == 32
    assert creator_side == joiner_side


@pytest.mark.parametrize("client", CLIENTS)
def test_verification_code_matches_events(
    session: dict[str, Any],
    suite: WebcryptoSuite,
    identities: dict[str, WebcryptoIdentity],
    peers: dict[str, WebcryptoPeer],
    client: str,
) -> None:
    reported = events(session, client, "onUserVerificationCode")
    assert len(reported) == 1
    assert reported[0]["userId"] == user_id(session, OTHER[client])

    pairwise_key = suite.pairwise_key(identities[client], peers[OTHER[client]])
    room_code = session["room"]["roomCode"]
    code = suite.verification_code(room_code, pairwise_key, 6)
    assert code == reported[0]["code"]


# Room messages.


@pytest.mark.parametrize("client", CLIENTS)
def test_received_room_messages_match_events(
    session: dict[str, Any], suite: WebcryptoSuite, room_key: bytes, client: str
) -> None:
    received = [frame for frame in frames(session, client, "in") if "E" in frame]
    opened = [json.loads(suite.open_room(room_key, frame)) for frame in received]
    reported = [event["data"] for event in events(session, client, "onMessage")]
    assert reported
    assert opened == reported


@pytest.mark.parametrize("client", CLIENTS)
def test_sent_room_messages_match_other_events(
    session: dict[str, Any], suite: WebcryptoSuite, room_key: bytes, client: str
) -> None:
    sent = [frame for frame in frames(session, client, "out") if "E" in frame]
    opened = [json.loads(suite.open_room(room_key, frame)) for frame in sent]
    reported = events(session, OTHER[client], "onMessage")
    assert opened == [event["data"] for event in reported]
    for message in opened:
        assert message["sender"] == user_id(session, client)


@pytest.mark.parametrize("field", ["E", "I"])
def test_tampered_room_message_rejected(
    session: dict[str, Any], suite: WebcryptoSuite, room_key: bytes, field: str
) -> None:
    received = [frame for frame in frames(session, "joiner", "in") if "E" in frame]
    tampered = {**received[0], field: flip_bit(received[0][field])}
    with pytest.raises(DecryptionError):
        suite.open_room(room_key, tampered)


def test_room_message_with_wrong_key_rejected(
    session: dict[str, Any], suite: WebcryptoSuite
) -> None:
    received = [frame for frame in frames(session, "joiner", "in") if "E" in frame]
    with pytest.raises(DecryptionError):
        suite.open_room(suite.new_room_key(), received[0])
