"""The property test of issue 24: random tables through dupq's writer and reader, ``dupq dedupe`` and
``dupq score`` — every row back once, in order, every value unchanged, or a one-line error naming the
file and the row (or column) for a reason the table really has. Tables, formats and checks:
:mod:`tests.table_fuzz`. Bounded here (``make test``, well under a minute); ``benchmarks/table_fuzz.py``
runs 10,000 examples and writes the counts.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.table_fuzz import Case, cases, check_dedupe, check_roundtrip, check_score

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES: Counter[str] = Counter()


@FAST
@given(case=cases())
def test_writer_then_reader_gives_every_value_back(case: Case):
    with tempfile.TemporaryDirectory() as tmp:
        OUTCOMES[check_roundtrip(case, Path(tmp))] += 1


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def test_dedupe_keeps_every_row_and_value(model):
    @SLOW
    @given(case=cases("dedupe"))
    def run(case: Case) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            check_dedupe(case, Path(tmp), model)

    run()


def test_score_keeps_every_row_and_value(model):
    @SLOW
    @given(case=cases("score"))
    def run(case: Case) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            check_score(case, Path(tmp), model)

    run()
