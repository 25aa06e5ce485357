"""How long each mode spends: repeats, timing windows, counts of sockets."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODES", "Budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """The repeats and durations of one mode, with times in seconds.

    Args:
        mode: ``smoke``, ``quick`` or ``full``.
        min_time: the shortest repeat of a fast call; calls per repeat grow to fill it.
        repeats: samples per fast call.
        identity_repeats: key pair generations timed per cipher suite (at least 2,
            because the handshake and direct messages reuse the identities).
        handshake_repeats: join handshakes timed per cipher suite.
        relay_warmup: seconds each sender configuration runs before measuring.
        relay_duration: seconds each sender configuration is measured.
        relay_interval: the length of the intervals that deliveries are counted in.
        idle_sockets: idle sockets opened to measure the relay's memory per socket.
        transport_duration: seconds measured in the in-process run per transport.
    """

    mode: str
    min_time: float
    repeats: int
    identity_repeats: int
    handshake_repeats: int
    relay_warmup: float
    relay_duration: float
    relay_interval: float
    idle_sockets: int
    transport_duration: float


MODES: dict[str, Budget] = {
    "smoke": Budget(
        mode="smoke",
        min_time=0.002,
        repeats=3,
        identity_repeats=2,
        handshake_repeats=2,
        relay_warmup=0.1,
        relay_duration=0.3,
        relay_interval=0.1,
        idle_sockets=32,
        transport_duration=0.3,
    ),
    "quick": Budget(
        mode="quick",
        min_time=0.01,
        repeats=5,
        identity_repeats=3,
        handshake_repeats=5,
        relay_warmup=0.3,
        relay_duration=1.5,
        relay_interval=0.25,
        idle_sockets=160,
        transport_duration=1.0,
    ),
    "full": Budget(
        mode="full",
        min_time=0.1,
        repeats=7,
        identity_repeats=5,
        handshake_repeats=15,
        relay_warmup=1.0,
        relay_duration=5.0,
        relay_interval=0.5,
        idle_sockets=800,
        transport_duration=3.0,
    ),
}
