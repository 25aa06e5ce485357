"""roupn.conformance itself: it fails faulty backends and names its missing extra.

Each faulty backend runs through the conformance class in a separate pytest
process, so its failures do not count as failures of this run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# A serializer whose errors are not MessageError: json's own ValueError and
# TypeError escape from it.
FAULTY_SERIALIZER = """
import json

import pytest

from roupn.conformance import SerializerConformance


class LeakyJsonSerializer:
    name = "leaky-json"
    content_type = "application/json"
    binary = False

    def dumps(self, message):
        return json.dumps(message, ensure_ascii=False).encode("utf-8")

    def loads(self, data):
        return json.loads(data)


class TestLeakyJsonSerializer(SerializerConformance):
    @pytest.fixture
    def serializer(self):
        return LeakyJsonSerializer()
"""

# A diff strategy whose trackers apply changes but return no inverse.
FAULTY_DIFF_STRATEGY = """
import pytest
from roupn_diff.snapshot import SnapshotStrategy

from roupn.conformance import DiffStrategyConformance


class NoInverseTracker:
    def __init__(self, tracker):
        self._tracker = tracker

    @property
    def document(self):
        return self._tracker.document

    def take_changes(self):
        return self._tracker.take_changes()

    def apply(self, changes):
        self._tracker.apply(changes)
        return []

    def revert(self, changes):
        self._tracker.revert(changes)

    def replace(self, document):
        self._tracker.replace(document)


class NoInverseStrategy(SnapshotStrategy):
    name = "no-inverse"

    def track(self, document):
        return NoInverseTracker(super().track(document))


class TestNoInverseStrategy(DiffStrategyConformance):
    @pytest.fixture
    def diff_strategy(self):
        return NoInverseStrategy()
"""


def run_suite(tmp_path: Path, source: str, selected: set[str]) -> tuple[set[str], str]:
    """Run the ``selected`` tests of a module in a new pytest process.

    Returns the names of the tests that failed, and the output.
    """
    module = tmp_path / "test_faulty_backend.py"
    module.write_text(source, encoding="utf-8")
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rf",
            "-p",
            "no:cacheprovider",
            "-k",
            " or ".join(sorted(selected)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = set(re.findall(r"^FAILED \S+::\w+::(\w+)", finished.stdout, re.M))
    return failed, finished.stdout + finished.stderr


def test_faulty_serializer_fails(tmp_path: Path) -> None:
    expected = {
        "test_dumps_rejects_unsupported",
        "test_dumps_rejects_cycle",
        "test_loads_rejects_garbage",
        "test_loads_rejects_truncated",
        "test_loads_rejects_trailing_data",
        "test_loads_raises_only_message_error",
    }
    passing = {"test_edge_value_round_trip", "test_message_round_trip"}
    failed, output = run_suite(tmp_path, FAULTY_SERIALIZER, expected | passing)
    assert expected <= failed, output
    assert not passing & failed, output


def test_faulty_diff_strategy_fails(tmp_path: Path) -> None:
    expected = {"test_apply_not_recorded", "test_apply_inverse_undoes_exactly"}
    passing = {"test_take_changes_starts_new_set", "test_revert_own_changes"}
    failed, output = run_suite(tmp_path, FAULTY_DIFF_STRATEGY, expected | passing)
    assert "test_apply_not_recorded" in failed, output
    assert "test_apply_inverse_undoes_exactly" in failed, output
    assert not passing & failed, output


def test_missing_extra_named() -> None:
    # A None entry in sys.modules makes the import fail as if hypothesis were absent.
    code = "import sys; sys.modules['hypothesis'] = None; import roupn.conformance"
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert finished.returncode != 0
    assert "ModuleNotFoundError" in finished.stderr
    assert "needs hypothesis" in finished.stderr
    assert "pip install 'roupn[conformance]'" in finished.stderr
