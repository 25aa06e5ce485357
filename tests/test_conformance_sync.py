"""Conformance of document changes with a recorded pair of JavaScript synchronizers.

The recording contains the to-do document that both clients showed after each edit,
and every room message the creator sent and received. The ``_SU`` state updates
in those messages carry change lists made by the JavaScript diff.
"""

from __future__ import annotations

import json
from base64 import b64decode
from itertools import pairwise
from typing import Any

import pytest
from conftest import load_vector
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from roupn_diff.snapshot import SnapshotStrategy
from roupn_diff.tracked import TrackedStrategy

from roupn.changes import (
    Change,
    apply_changes,
    copy_json,
    diff,
    json_equal,
    revert_changes,
)
from roupn.interfaces import DiffStrategy

STRATEGIES: list[DiffStrategy] = [SnapshotStrategy(), TrackedStrategy()]


@pytest.fixture(scope="module")
def session() -> dict[str, Any]:
    return load_vector("roupn-0.1-sync-session.json")


def creator_steps(session: dict[str, Any]) -> list[dict[str, Any]]:
    return [step["creator"] for step in session["steps"]]


def room_messages(session: dict[str, Any]) -> list[dict[str, Any]]:
    """Decrypt every room message the creator sent or received, in order."""
    keys = {key["algorithm"]: key for key in session["clients"]["creator"]["keys"]}
    cipher = AESGCM(b64decode(keys["AES-GCM"]["raw"]))
    messages = []
    for frame in session["clients"]["creator"]["frames"]:
        fields = dict(
            segment.split(":", 1)
            for segment in frame["data"].split("|")
            if ":" in segment
        )
        if "E" not in fields:
            continue
        # Binary fields are base64 twice on the wire: once as bytes, once by framing.
        ciphertext = b64decode(b64decode(fields["E"]))
        iv = b64decode(b64decode(fields["I"]))
        messages.append(json.loads(cipher.decrypt(iv, ciphertext, None)))
    return messages


def recorded_start(session: dict[str, Any]) -> dict[str, Any]:
    """Return the state of the first full sync, which every update builds on."""
    syncs = [m for m in room_messages(session) if m["type"] == "_SS"]
    state: dict[str, Any] = syncs[0]["state"]
    return state


def recorded_updates(session: dict[str, Any]) -> list[list[Change]]:
    """Return the change list of every ``_SU`` state update, in recorded order."""
    return [m["stateDelta"] for m in room_messages(session) if m["type"] == "_SU"]


def test_recording_has_update_per_step(session: dict[str, Any]) -> None:
    steps = creator_steps(session)
    updates = recorded_updates(session)
    assert len(steps) >= 2
    assert len(updates) == len(steps) - 1
    assert recorded_start(session) == steps[0]


def test_diff_between_steps_applies(session: dict[str, Any]) -> None:
    steps = creator_steps(session)
    for before, after in pairwise(steps):
        changes = diff(before, after)
        document = copy_json(before)
        apply_changes(document, changes)
        assert json_equal(document, after)
        revert_changes(document, changes)
        assert json_equal(document, before)


def test_diff_removes_first_todo_once(session: dict[str, Any]) -> None:
    # The JavaScript diff sets the first to-do to the second and deletes the
    # second. A single delete of the first one is the shorter change list.
    steps = creator_steps(session)
    removal = next(
        i
        for i in range(1, len(steps))
        if len(steps[i]["todos"]) < len(steps[i - 1]["todos"])
    )
    changes = diff(steps[removal - 1], steps[removal])
    deletes = [c for c in changes if c["type"] == "delete"]
    assert deletes == [
        {
            "type": "delete",
            "path": ["todos", "0"],
            "old": steps[removal - 1]["todos"][0],
        }
    ]


def test_javascript_updates_apply_in_order(session: dict[str, Any]) -> None:
    steps = creator_steps(session)
    document = copy_json(recorded_start(session))
    for step, changes in zip(steps[1:], recorded_updates(session), strict=True):
        apply_changes(document, changes)
        assert json_equal(document, step)


def test_javascript_updates_revert(session: dict[str, Any]) -> None:
    steps = creator_steps(session)
    for index, changes in enumerate(recorded_updates(session)):
        document = copy_json(steps[index + 1])
        revert_changes(document, changes)
        assert json_equal(document, steps[index])


def test_javascript_updates_inverse_undoes(session: dict[str, Any]) -> None:
    steps = creator_steps(session)
    for index, changes in enumerate(recorded_updates(session)):
        document = copy_json(steps[index])
        inverse = apply_changes(document, changes)
        apply_changes(document, inverse)
        assert json_equal(document, steps[index])


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_trackers_apply_javascript_updates(
    session: dict[str, Any], strategy: DiffStrategy
) -> None:
    steps = creator_steps(session)
    tracker = strategy.track(copy_json(recorded_start(session)))
    for step, changes in zip(steps[1:], recorded_updates(session), strict=True):
        before = copy_json(tracker.document)
        inverse = tracker.apply(changes)
        assert json_equal(tracker.document, step)
        assert tracker.take_changes() == []

        tracker.apply(inverse)
        assert json_equal(tracker.document, before)
        tracker.apply(changes)
    assert tracker.take_changes() == []
