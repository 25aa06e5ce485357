"""Write the seed inputs of ``fuzz_frames.py`` into a folder.

Each seed starts with the byte that picks the harness's target. Seeds give the
fuzzer valid frames, state updates and control messages to mutate, which random
bytes rarely reach. With ``ROUPN_VECTORS`` set, the frames of the recorded
JavaScript session are added too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgpack

from roupn.frames import encode_binary, encode_text

TEXT_FRAME, BINARY_FRAME, JSON_UPDATE, MSGPACK_UPDATE, TEXT_RELAY, BINARY_RELAY = (
    bytes([target]) for target in range(6)
)
FROM_JOINER, FROM_CREATOR = b"\x00", b"\x01"

UPDATES: list[list[dict[str, Any]]] = [
    [{"type": "set", "path": ["title"], "new": "new plan", "old": "plan"}],
    [{"type": "set", "path": ["items", "2"], "new": {"done": False, "text": "c"}}],
    [{"type": "delete", "path": ["items", "0"], "old": {"done": False, "text": "a"}}],
    [
        {"type": "set", "path": ["owner", "tags", "0"], "new": "z", "old": "x"},
        {"type": "delete", "path": ["count"], "old": 3},
        {"type": "set", "path": ["new"], "new": [1, 2.5, None, True]},
    ],
    [{"type": "set", "path": [], "new": {"fresh": {}}}],
]

FRAMES: list[dict[str, bytes]] = [
    {"I": b"0" * 12, "E": b"ciphertext"},
    {"U": b"00000000-0000-4000-8000-000000000000", "D": b'{"type":"_X0"}'},
    {"U": b"user", "V": b"0" * 12, "K": b"key", "P": b"payload", "G": b"sig"},
    {"S": b'{"type":"_UK","userId":"someone"}'},
    {"S": b'{"type":"_UV","userId":"someone"}'},
    {"S": b'{"type":"_RC"}'},
]


def seeds() -> list[bytes]:
    found = []
    for update in UPDATES:
        found.append(JSON_UPDATE + json.dumps(update).encode())
        found.append(MSGPACK_UPDATE + msgpack.packb(update))
    for frame in FRAMES:
        text = encode_text(frame).encode()
        binary = encode_binary(frame)
        found.append(TEXT_FRAME + text)
        found.append(BINARY_FRAME + binary)
        for sender in (FROM_JOINER, FROM_CREATOR):
            found.append(TEXT_RELAY + sender + text)
            found.append(BINARY_RELAY + sender + binary)
    vectors = os.environ.get("ROUPN_VECTORS")
    if vectors:
        session = json.loads(
            (Path(vectors) / "roupn-0.1-session.json").read_text(encoding="utf-8")
        )
        for client in session["clients"].values():
            for frame in client["frames"]:
                text = str(frame["data"]).encode()
                found.append(TEXT_FRAME + text)
                found.append(TEXT_RELAY + FROM_JOINER + text)
    return found


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python fuzz/make_seeds.py FOLDER")
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds():
        name = hashlib.sha1(seed).hexdigest()
        (folder / name).write_bytes(seed)


if __name__ == "__main__":
    main()
