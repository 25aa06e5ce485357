"""The serializer family: encode, decode and bytes on the wire for every serializer.

Each registered serializer encodes and decodes the same four messages that a room
sends: a chat message, a state update, a full state sync and the first join
handshake message. The wire size is the whole room frame: the encoded message
sealed with the default cipher suite, then framed as text by
:func:`roupn.frames.encode_text`, base64 included, and as the client sends it
with this serializer (binary serializers use :func:`roupn.frames.encode_binary`,
without base64). The relay adds its ``T`` segment when it forwards a frame.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from functools import partial
from typing import Any

from roupn.frames import encode_binary, encode_text
from roupn.messages import MessageType
from roupn.plugins import BackendKind
from roupn.settings import Settings

from .backends import load_backends
from .budget import Budget
from .report import format_bytes, format_seconds, seconds_cell, summarize
from .results import FamilyResult, Measurement, Progress, Recommendation, Skip, Table
from .timing import time_per_call

__all__ = ["NAME", "make_messages", "run"]

NAME = "serializer"

SENDER_TIME = 1_767_225_600_000  # 2026-01-01 in milliseconds since the epoch

# Sizes of webcrypto's handshake fields, so the handshake message has their length:
# RSA-4096 SubjectPublicKeyInfo DER, a raw P-256 point and an RSA-4096 signature.
RSA_PUBLIC_KEY_SIZE = 550
EC_POINT_SIZE = 65
RSA_SIGNATURE_SIZE = 512


def _b64(rng: random.Random, size: int) -> str:
    return base64.b64encode(rng.randbytes(size)).decode("ascii")


def _member_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_messages(seed: int = 7) -> dict[str, dict[str, Any]]:
    """Return the four messages by name, the same for a given seed."""
    rng = random.Random(seed)
    sender = _member_id(rng)
    stamp = {"sender": sender, "senderTime": SENDER_TIME}
    chat = {
        "type": "chat",
        "text": "Meeting moved to 14:30, room B. Bring the draft, and the café "
        "receipts for the offsite. 🙂",
        "replyTo": _member_id(rng),
        **stamp,
    }
    update = {
        "identifier": _b64(rng, 12),
        "stateDelta": [
            {
                "type": "set",
                "path": ["users", "3", "status"],
                "new": "away",
                "old": "online",
            },
            {
                "type": "set",
                "path": ["users", "3", "settings", "volume"],
                "new": 4,
                "old": 7,
            },
            {
                "type": "set",
                "path": ["messages", "41", "text"],
                "new": "ok, see you (edited)",
                "old": "ok, see you",
            },
            {
                "type": "delete",
                "path": ["messages", "12"],
                "old": {"id": "message-12", "text": "typo"},
            },
            {
                "type": "set",
                "path": ["settings", "title"],
                "new": "Planning Q3",
                "old": "Planning",
            },
        ],
        "type": MessageType.STATE_UPDATE.value,
        **stamp,
    }
    users = [
        {
            "id": _member_id(rng),
            "name": f"User {number}",
            "status": rng.choice(("online", "away", "busy")),
            "settings": {"theme": "dark", "volume": rng.randint(0, 10)},
        }
        for number in range(50)
    ]
    messages = [
        {
            "id": f"message-{number}",
            "author": rng.choice(users)["id"],
            "text": " ".join(
                rng.choice(("see", "you", "at", "noon", "ok")) for _ in range(8)
            ),
            "time": SENDER_TIME - 60_000 * number,
        }
        for number in range(50)
    ]
    sync = {
        "type": MessageType.STATE_SYNC.value,
        "state": {
            "users": users,
            "messages": messages,
            "settings": {"title": "Planning"},
        },
        **stamp,
    }
    handshake = {
        "type": MessageType.EXCHANGE_0.value,
        "publicData": {"name": "Alice", "avatar": "fox"},
        "publicEncryptKey": _b64(rng, RSA_PUBLIC_KEY_SIZE),
        "publicExchangeKey": _b64(rng, EC_POINT_SIZE),
        "publicSignKey": _b64(rng, RSA_PUBLIC_KEY_SIZE),
        "signature": _b64(rng, RSA_SIGNATURE_SIZE),
        **stamp,
    }
    return {
        "chat message": chat,
        "state update": update,
        "full sync": sync,
        "join handshake": handshake,
    }


def _measure(
    budget: Budget,
    progress: Progress,
    result: FamilyResult,
    name: str,
    serializer: Any,
    messages: dict[str, dict[str, Any]],
) -> None:
    settings = Settings()
    suite = settings.load_cipher_suite()
    room_key = suite.new_room_key()
    for label, message in messages.items():
        encoded = serializer.dumps(message)
        if serializer.loads(encoded) != message:
            result.skipped.append(
                Skip(f"{name} {label}", "decoding the encoded message changed it")
            )
            continue
        sealed = suite.seal_room(room_key, encoded)
        text_frame = encode_text(sealed).encode("utf-8")
        sent_frame = encode_binary(sealed) if serializer.binary else text_frame
        sizes = {
            "encoded_bytes": float(len(encoded)),
            "text_frame_bytes": float(len(text_frame)),
            "frame_bytes": float(len(sent_frame)),
        }
        for operation, function in (
            ("encode", partial(serializer.dumps, message)),
            ("decode", partial(serializer.loads, encoded)),
        ):
            samples = time_per_call(
                function, min_time=budget.min_time, repeats=budget.repeats
            )
            measurement = Measurement(
                NAME, operation, name, "s", samples, {"message": label}, dict(sizes)
            )
            result.measurements.append(measurement)
            progress(summarize(measurement, f"{name} {operation} {label}"))


def _table(result: FamilyResult, names: list[str], labels: list[str]) -> Table:
    suite = Settings().cipher_suite
    table = Table(
        "serializer: time per message, median (IQR), and bytes",
        [
            "message",
            "serializer",
            "encode",
            "decode",
            "encoded",
            "text frame",
            "sent frame",
            "sent/encoded",
        ],
        notes=[
            f"text frame: sealed with {suite} and framed by encode_text (base64 "
            "included). sent frame: as the client sends it with this serializer "
            "(encode_binary for a binary serializer).",
        ],
    )
    for label in labels:
        for name in names:
            encode = result.find("encode", name, message=label)
            decode = result.find("decode", name, message=label)
            if encode is None or decode is None:
                continue
            encoded = encode.values["encoded_bytes"]
            text_frame = encode.values["text_frame_bytes"]
            frame = encode.values["frame_bytes"]
            table.rows.append(
                [
                    label,
                    name,
                    seconds_cell(encode.stats),
                    seconds_cell(decode.stats),
                    format_bytes(encoded),
                    format_bytes(text_frame),
                    format_bytes(frame),
                    f"{frame / encoded:.2f}x",
                ]
            )
    return table


def _recommend(result: FamilyResult, names: list[str], labels: list[str]) -> None:
    """Advise the serializer with the smallest frames and the fastest round trips.

    Both are totals over the four messages, so the full sync weighs most in time
    and in bytes, as it does on the wire.
    """
    times: dict[str, float] = {}
    frames: dict[str, float] = {}
    for name in names:
        found = [
            (
                result.find("encode", name, message=label),
                result.find("decode", name, message=label),
            )
            for label in labels
        ]
        pairs = [(e, d) for e, d in found if e is not None and d is not None]
        if len(pairs) != len(labels):
            continue
        times[name] = sum(e.stats.median + d.stats.median for e, d in pairs)
        frames[name] = sum(e.values["frame_bytes"] for e, _ in pairs)
    if not times:
        return
    fastest = min(times, key=times.__getitem__)
    smallest = min(frames, key=frames.__getitem__)
    default = Settings().serializer

    def compare(values: dict[str, float], best: str, unit: str) -> str:
        others = [n for n in values if n != best]
        if not others:
            return "the only usable serializer"
        return ", ".join(
            f"{values[best] / values[n]:.0%} of {n}'s {unit}" for n in others
        )

    size_sentence = (
        f"Smallest frames: {format_bytes(frames[smallest])} for the four messages, "
        f"{compare(frames, smallest, 'bytes')}"
    )
    speed_sentence = (
        f"Fastest encode plus decode: {format_seconds(times[fastest])} for the four "
        f"messages, {compare(times, fastest, 'time')}"
    )
    if fastest == smallest:
        picks = [("serializer", fastest, [size_sentence, speed_sentence])]
    else:
        picks = [
            ("serializer for size", smallest, [size_sentence]),
            ("serializer for speed", fastest, [speed_sentence]),
        ]

    for purpose, name, sentences in picks:
        if name != default:
            sentences.append(
                "The relay and every member must use the same serializer, so keep "
                f"{default}, the default, in rooms with clients on default settings"
            )
        reason = ". ".join(sentences) + "."
        result.recommendations.append(Recommendation(purpose, name, reason))


def run(budget: Budget, progress: Progress) -> FamilyResult:
    """Measure every registered serializer on the same messages."""
    started = time.perf_counter()
    result = FamilyResult(NAME)
    serializers, skipped = load_backends(BackendKind.SERIALIZER)
    result.skipped += skipped
    messages = make_messages()
    for name, serializer in serializers:
        _measure(budget, progress, result, name, serializer, messages)
    names = [name for name, _ in serializers]
    labels = list(messages)
    result.tables.append(_table(result, names, labels))
    _recommend(result, names, labels)
    result.seconds = time.perf_counter() - started
    return result
