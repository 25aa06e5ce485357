"""The ``snapshot`` and ``tracked`` diff strategies.

``snapshot`` compares the document with a private copy of the state last taken,
like the JavaScript library. ``tracked`` records each change as it is made, so
taking the changes costs nothing per unchanged value.
"""

from __future__ import annotations

from collections.abc import Iterable

from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

__all__: list[str] = []


@hookimpl
def roupn_diff_strategies() -> Iterable[Backend]:
    return [
        Backend(
            "snapshot",
            "roupn_diff.snapshot:SnapshotStrategy",
            summary="compare with a private copy of the last sent state",
        ),
        Backend(
            "tracked",
            "roupn_diff.tracked:TrackedStrategy",
            summary="record each change as it is made, without a copy",
        ),
    ]
