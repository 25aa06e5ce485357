"""The cipher family: every registered cipher suite against the raw AEAD primitives.

Each suite seals and opens room messages of 64 B, 1 KiB, 64 KiB and 1 MiB and
direct messages of 1 KiB. It also generates identities (every key pair of a
client) and runs whole join handshakes between two room sessions through the
relay's state machine.

The primitives are the ceiling on the same data: AES-256-GCM from ``cryptography``,
and XChaCha20-Poly1305 and SecretBox (XSalsa20-Poly1305) from PyNaCl when it is
installed. Each seal draws a fresh random nonce, as the suites must, and the key
object of a primitive is made once. A suite's ratio is its messages per second
over those of its matching primitive.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from roupn.interfaces import CipherSuite, MessageContext
from roupn.plugins import BackendKind
from roupn.settings import Settings

from .backends import load_backends
from .budget import Budget
from .handshake import run_join_handshake
from .report import format_rate, format_seconds, format_size, seconds_cell, summarize
from .results import FamilyResult, Measurement, Progress, Recommendation, Skip, Table
from .timing import time_each, time_per_call

__all__ = ["NAME", "run"]

NAME = "cipher"

ROOM_SIZES = (64, 1024, 64 * 1024, 1024 * 1024)
DIRECT_SIZE = 1024

# The size at which suites are compared for room messages: a typical chat message
# or state update.
RECOMMENDATION_SIZE = 1024

AES_GCM = "AES-256-GCM (cryptography)"
XCHACHA = "XChaCha20-Poly1305 (PyNaCl)"
SECRETBOX = "SecretBox XSalsa20-Poly1305 (PyNaCl)"

# The room code and sender id for suites that bind them into each message.
ROOM_CODE = "BENCH2"
SENDER_ID = "6f1c2a7e-3b5d-4e8f-9a01-b2c3d4e5f607"

# The primitive that each known suite is built on. Other suites get no ratio.
MATCHING_PRIMITIVE = {"webcrypto": AES_GCM, "nacl": XCHACHA}


@dataclass(frozen=True, slots=True)
class _Primitive:
    name: str
    seal: Callable[[bytes], Any]
    open: Callable[[Any], bytes]


def _aes_gcm() -> _Primitive:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(plaintext: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, aes.encrypt(nonce, plaintext, None)

    def open_(sealed: tuple[bytes, bytes]) -> bytes:
        return aes.decrypt(sealed[0], sealed[1], None)

    return _Primitive(AES_GCM, seal, open_)


def _xchacha() -> _Primitive:
    from nacl import bindings

    key = os.urandom(bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    nonce_size = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

    def seal(plaintext: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(nonce_size)
        ciphertext = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, None, nonce, key
        )
        return nonce, ciphertext

    def open_(sealed: tuple[bytes, bytes]) -> bytes:
        plaintext: bytes = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[1], None, sealed[0], key
        )
        return plaintext

    return _Primitive(XCHACHA, seal, open_)


def _secretbox() -> _Primitive:
    from nacl.secret import SecretBox

    box = SecretBox(os.urandom(SecretBox.KEY_SIZE))

    def open_(sealed: bytes) -> bytes:
        plaintext: bytes = box.decrypt(sealed)
        return plaintext

    return _Primitive(SECRETBOX, box.encrypt, open_)


def _primitives(result: FamilyResult) -> list[_Primitive]:
    primitives = [_aes_gcm()]
    if importlib.util.find_spec("nacl") is None:
        for name in (XCHACHA, SECRETBOX):
            result.skipped.append(
                Skip(
                    name, "PyNaCl is not installed (pip install 'roupn[nacl]' adds it)"
                )
            )
    else:
        primitives += [_xchacha(), _secretbox()]
    return primitives


class _Bench:
    """Measures one callable after another and records each result."""

    def __init__(self, budget: Budget, result: FamilyResult, progress: Progress):
        self.budget = budget
        self.result = result
        self.progress = progress

    def fast(
        self,
        benchmark: str,
        backend: str,
        function: Callable[[], object],
        size: int | None = None,
    ) -> Measurement:
        samples = time_per_call(
            function, min_time=self.budget.min_time, repeats=self.budget.repeats
        )
        return self.record(benchmark, backend, samples, size)

    def slow(
        self, benchmark: str, backend: str, function: Callable[[], object]
    ) -> Measurement:
        samples = time_each(function, repeats=self.budget.handshake_repeats)
        return self.record(benchmark, backend, samples, None)

    def record(
        self, benchmark: str, backend: str, samples: list[float], size: int | None
    ) -> Measurement:
        params: dict[str, Any] = {} if size is None else {"size": size}
        measurement = Measurement(NAME, benchmark, backend, "s", samples, params)
        median = measurement.stats.median
        measurement.values["per_s"] = 1 / median
        if size is not None:
            measurement.values["mb_per_s"] = size / median / 1e6
        self.result.measurements.append(measurement)
        label = f"{benchmark} {format_size(size)}" if size is not None else benchmark
        self.progress(summarize(measurement, f"{backend} {label}"))
        return measurement


# Measurements.


def _measure_primitive(bench: _Bench, primitive: _Primitive, size: int) -> None:
    plaintext = os.urandom(size)
    sealed = primitive.seal(plaintext)
    if primitive.open(sealed) != plaintext:
        raise AssertionError(f"{primitive.name} did not open what it sealed")
    bench.fast("room seal", primitive.name, partial(primitive.seal, plaintext), size)
    bench.fast("room open", primitive.name, partial(primitive.open, sealed), size)


class _RoomSealer:
    """Seals and opens one suite's room messages, with a counter per message."""

    def __init__(self, name: str, suite: CipherSuite) -> None:
        self.name = name
        self.suite = suite
        self.room_key = suite.new_room_key()
        self._counter = itertools.count()

    def context(self) -> MessageContext:
        # Each message gets the next counter, as a sender's session gives it.
        return MessageContext(ROOM_CODE, SENDER_ID, 0, next(self._counter))

    def seal(self, plaintext: bytes) -> dict[str, bytes]:
        return self.suite.seal_room(self.room_key, plaintext, self.context())

    def measure(self, bench: _Bench, size: int) -> None:
        plaintext = os.urandom(size)
        received = self.context()
        fields = self.suite.seal_room(self.room_key, plaintext, received)
        opener = partial(self.suite.open_room, self.room_key, fields, received)
        if opener() != plaintext:
            raise AssertionError(f"cipher suite {self.name} did not open its message")
        bench.fast("room seal", self.name, partial(self.seal, plaintext), size)
        bench.fast("room open", self.name, opener, size)


def _measure_rooms(
    bench: _Bench, primitives: list[_Primitive], suites: list[tuple[str, Any]]
) -> None:
    """Measure room messages size by size, each suite right after the primitives.

    A suite and its primitive then run close together in time, so a change in the
    machine's load between them skews their ratio less.
    """
    sealers = [_RoomSealer(name, suite) for name, suite in suites]
    for size in ROOM_SIZES:
        for primitive in primitives:
            _measure_primitive(bench, primitive, size)
        for sealer in sealers:
            sealer.measure(bench, size)


def _measure_direct(
    bench: _Bench, name: str, suite: CipherSuite, sender: Any, receiver: Any
) -> None:
    def peer_of(identity: Any) -> Any:
        signature = suite.sign_exchange(identity)
        return suite.load_peer(
            {**suite.public_fields(identity), "signature": signature}
        )

    receiver_peer = peer_of(receiver)
    sender_peer = peer_of(sender)
    sent = MessageContext(
        ROOM_CODE,
        SENDER_ID,
        pairwise_key=suite.pairwise_key(sender, receiver_peer, ROOM_CODE),
    )
    received = MessageContext(
        ROOM_CODE,
        SENDER_ID,
        pairwise_key=suite.pairwise_key(receiver, sender_peer, ROOM_CODE),
    )
    plaintext = os.urandom(DIRECT_SIZE)
    fields = suite.seal_direct(sender, receiver_peer, plaintext, sent)
    if suite.open_direct(receiver, sender_peer, fields, received) != plaintext:
        raise AssertionError(f"cipher suite {name} did not open its direct message")
    seal = partial(suite.seal_direct, sender, receiver_peer, plaintext, sent)
    opener = partial(suite.open_direct, receiver, sender_peer, fields, received)
    bench.fast("direct seal", name, seal, DIRECT_SIZE)
    bench.fast("direct open", name, opener, DIRECT_SIZE)


def _measure_suite(bench: _Bench, name: str, suite: CipherSuite) -> None:
    """Measure identities, direct messages and the handshake of one suite."""
    identities = []

    def generate() -> None:
        identities.append(suite.generate_identity())

    samples = time_each(generate, repeats=max(2, bench.budget.identity_repeats))
    bench.record("identity generation", name, samples, None)
    creator, joiner = identities[0], identities[1]

    _measure_direct(bench, name, suite, creator, joiner)

    serializer = Settings().load_serializer()

    def handshake() -> None:
        run_join_handshake(suite, serializer, creator, joiner)

    handshake()  # Warm-up, and a failure here stops before any timing.
    bench.slow("join handshake", name, handshake)


# Results.


def _add_ratios(result: FamilyResult, suites: list[str]) -> None:
    """Set each room measurement's ratio to its suite's matching primitive."""
    for name in suites:
        primitive = MATCHING_PRIMITIVE.get(name)
        if primitive is None:
            continue
        for measurement in result.measurements:
            is_room = measurement.benchmark in ("room seal", "room open")
            if measurement.backend != name or not is_room:
                continue
            ceiling = result.find(
                measurement.benchmark, primitive, size=measurement.params["size"]
            )
            if ceiling is not None:
                measurement.values["ratio"] = (
                    measurement.values["per_s"] / ceiling.values["per_s"]
                )
                measurement.params["primitive"] = primitive


def _table(result: FamilyResult) -> Table:
    table = Table(
        "cipher: time per operation, median (IQR)",
        ["benchmark", "size", "backend", "time", "messages/s", "MB/s", "of primitive"],
    )
    order = ["room seal", "room open", "direct seal", "direct open"]
    order += ["identity generation", "join handshake"]
    rows = sorted(
        result.measurements,
        key=lambda m: (order.index(m.benchmark), m.params.get("size", 0), m.backend),
    )
    for measurement in rows:
        values = measurement.values
        size = measurement.params.get("size")
        ratio = values.get("ratio")
        table.rows.append(
            [
                measurement.benchmark,
                format_size(size) if size is not None else "",
                measurement.backend,
                seconds_cell(measurement.stats),
                format_rate(values["per_s"]) if size is not None else "",
                f"{values['mb_per_s']:,.1f}" if "mb_per_s" in values else "",
                f"{ratio:.2f}x" if ratio is not None else "",
            ]
        )
    pairs = ", ".join(f"{suite} ↔ {p}" for suite, p in MATCHING_PRIMITIVE.items())
    table.notes += [
        "MB/s counts plaintext bytes, 10^6 bytes to the MB.",
        f"of primitive: the suite's messages/s over its primitive's ({pairs}).",
        "join handshake: from the creator joining to the joiner CONNECTED, through "
        "the relay's state machine without sockets, key pairs made beforehand.",
    ]
    return table


def _recommend(result: FamilyResult, suites: list[str]) -> None:
    """Advise the suite that seals and opens a typical room message fastest."""
    costs: dict[str, float] = {}
    for name in suites:
        seal = result.find("room seal", name, size=RECOMMENDATION_SIZE)
        open_ = result.find("room open", name, size=RECOMMENDATION_SIZE)
        if seal is not None and open_ is not None:
            costs[name] = seal.stats.median + open_.stats.median
    if not costs:
        return
    best = min(costs, key=costs.__getitem__)

    size = format_size(RECOMMENDATION_SIZE)
    first = (
        f"Seals and opens a {size} room message in {format_seconds(costs[best])} "
        f"({format_rate(1 / costs[best], ' msg/s')})"
    )
    others = [f"{format_seconds(c)} for {n}" for n, c in costs.items() if n != best]
    if others:
        first += ", against " + ", ".join(others)
    else:
        first += ", as the only usable cipher suite"
    sentences = [first]

    seal = result.find("room seal", best, size=RECOMMENDATION_SIZE)
    if seal is not None and "ratio" in seal.values:
        sentences.append(
            f"Its seal runs at {seal.values['ratio']:.2f}x the messages/s of "
            f"{seal.params['primitive']}"
        )

    handshakes = {
        name: found.stats.median
        for name in costs
        if (found := result.find("join handshake", name)) is not None
    }
    if best in handshakes:
        sentence = f"A join handshake takes {format_seconds(handshakes[best])}"
        others = [
            f"{format_seconds(seconds)} for {name}"
            for name, seconds in handshakes.items()
            if name != best
        ]
        if others:
            sentence += f", against {', '.join(others)}"
        sentences.append(sentence)

    reason = ". ".join(sentences) + "."
    result.recommendations.append(
        Recommendation("cipher suite for room messages", best, reason)
    )


def run(budget: Budget, progress: Progress) -> FamilyResult:
    """Measure every registered cipher suite and the primitives under them."""
    started = time.perf_counter()
    result = FamilyResult(NAME)
    bench = _Bench(budget, result, progress)
    suites, skipped = load_backends(BackendKind.CIPHER_SUITE)
    result.skipped += skipped
    _measure_rooms(bench, _primitives(result), suites)
    for name, suite in suites:
        _measure_suite(bench, name, suite)
    names = [name for name, _ in suites]
    _add_ratios(result, names)
    result.tables.append(_table(result))
    _recommend(result, names)
    result.seconds = time.perf_counter() - started
    return result
