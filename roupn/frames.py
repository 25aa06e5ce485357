"""Text frames of the roupn 0.1 protocol: ``KEY:b64(value)|KEY:b64(value)|...``.

A decoded frame maps each single-letter key to bytes. ``T`` and ``U`` hold UTF-8
text, ``S`` and ``D`` hold a serialized message, and the binary fields (``E``, ``I``,
``V``, ``K``, ``P``, ``G``) hold raw bytes, which the text framing encodes as base64
twice, as the JavaScript library does.
"""

from __future__ import annotations

import binascii
import struct
from base64 import b64decode, b64encode

from .errors import FrameError

__all__ = [
    "BINARY_KEYS",
    "Frame",
    "decode_binary",
    "decode_text",
    "encode_binary",
    "encode_text",
    "frame_text",
    "split_segments",
]

Frame = dict[str, bytes]

BINARY_KEYS = frozenset("EIVKPG")

# Keys a frame may carry. The relay forwards unknown keys and clients ignore them.
KNOWN_KEYS = frozenset("TSEIUDVKPG")


def _b64decode(value: str | bytes, key: str) -> bytes:
    try:
        return b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"frame segment {key!r} is not valid base64: {exc}") from None


def split_segments(text: str) -> dict[str, str]:
    """Split a text frame into its keys and still-encoded values.

    Segments without a ``:`` or with an empty key are ignored, as the JavaScript
    decoder ignores them.

    Raises:
        FrameError: a key appears twice.
    """
    segments: dict[str, str] = {}
    for segment in text.split("|"):
        key, separator, value = segment.partition(":")
        if not separator or not key:
            continue
        if key in segments:
            raise FrameError(f"frame has the key {key!r} twice")
        segments[key] = value
    return segments


def decode_text(text: str) -> Frame:
    """Decode a text frame into raw values.

    Raises:
        FrameError: a value is not valid base64, or a key appears twice.
    """
    frame: Frame = {}
    for key, value in split_segments(text).items():
        raw = _b64decode(value, key)
        if key in BINARY_KEYS:
            raw = _b64decode(raw, key)
        frame[key] = raw
    return frame


def encode_text(frame: Frame) -> str:
    """Encode raw values into a text frame, keys in the order given."""
    parts = []
    for key, value in frame.items():
        if key in BINARY_KEYS:
            value = b64encode(value)
        parts.append(f"{key}:{b64encode(value).decode('ascii')}")
    return "|".join(parts)


def frame_text(frame: Frame, key: str) -> str | None:
    """Return a text field (``T`` or ``U``) as a string, or None if absent.

    Raises:
        FrameError: the value is not valid UTF-8.
    """
    value = frame.get(key)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(f"frame segment {key!r} is not valid UTF-8") from None


# Binary frames, for binary serializers: each segment is its one-letter key, the
# value's length as four big-endian bytes, then the raw value, with no base64.

_LENGTH_SIZE = 4
_LENGTH = struct.Struct(">I")


def _binary_segment(key: str, value: bytes) -> bytes:
    return key.encode("ascii") + len(value).to_bytes(_LENGTH_SIZE, "big") + value


def encode_binary(frame: Frame) -> bytes:
    """Encode raw values into a binary frame, keys in the order given."""
    return b"".join(_binary_segment(key, value) for key, value in frame.items())


def decode_binary(data: bytes) -> Frame:
    """Decode a binary frame.

    Raises:
        FrameError: a segment is truncated, a key is not a letter, or a key
            appears twice.
    """
    frame: Frame = {}
    position = 0
    size = len(data)
    while position < size:
        start = position + 1 + _LENGTH_SIZE
        if start > size:
            raise FrameError(f"binary frame is truncated at byte {position}")
        code = data[position]
        # ASCII letters only: A-Z is 65-90 and a-z is 97-122.
        if not (65 <= code <= 90 or 97 <= code <= 122):
            raise FrameError(f"binary frame has an invalid key byte {code}")
        key = chr(code)
        (length,) = _LENGTH.unpack_from(data, position + 1)
        end = start + length
        if end > size:
            raise FrameError(f"binary frame segment {key!r} is truncated")
        if key in frame:
            raise FrameError(f"frame has the key {key!r} twice")
        frame[key] = data[start:end]
        position = end
    return frame


def time_segment_binary(milliseconds: int) -> bytes:
    """Return the relay's ``T`` segment for a binary frame."""
    return _binary_segment("T", str(milliseconds).encode("ascii"))
