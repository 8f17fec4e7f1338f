"""The model card (``dupq.json``): one reader and writer, its operating-point rules, its version guard."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dupq.card import CARD_FORMAT_VERSION, DEDUPE_POINT, MATCH_POINT, ModelCard, has_card
from dupq.encoder import resolve_threshold
from dupq.errors import StoreError

REPO = Path(__file__).resolve().parents[1]

POINTS = {
    "best_f1": {"threshold": 0.71, "f1": 0.8, "reached": True},
    "precision_0.90": {"threshold": 0.83, "recall": 0.6, "reached": True},
    "precision_0.95": {"threshold": 0.99, "recall": 0.01, "reached": False},
}


def test_round_trip_keeps_every_field_including_unknown_ones(tmp_path: Path) -> None:
    data = {
        "format_version": 1,
        "kind": "bi-encoder",
        "base_model": "default",
        "threshold": 0.71,
        "calibration": {"coef": 9.0, "intercept": -6.0},
        "operating_points": POINTS,
        "training": {"steps": 12, "seed": 42},
        "forgetting": {"sts": {"ap": 0.5}},
    }
    (tmp_path / "dupq.json").write_text(json.dumps(data))
    card = ModelCard.read(tmp_path)
    assert card is not None and card.base == "default" and card.extra["training"]["steps"] == 12
    out = tmp_path / "copy"
    out.mkdir()
    card.write(out)
    assert json.loads((out / "dupq.json").read_text()) == data


def test_threshold_at_uses_a_reached_point_else_best_f1() -> None:
    card = ModelCard(threshold=0.71, operating_points=POINTS)
    assert card.threshold_at(DEDUPE_POINT) == pytest.approx(0.83)
    assert card.threshold_at("precision_0.95") == pytest.approx(0.71)  # not reached on dev
    assert card.threshold_at(None) == pytest.approx(0.71)
    assert card.point(MATCH_POINT)["f1"] == 0.8
    assert ModelCard().threshold_at(DEDUPE_POINT) is None


def test_resolve_threshold_reads_the_card(tmp_path: Path) -> None:
    ModelCard(threshold=0.71, operating_points=POINTS).write(tmp_path)
    t, how = resolve_threshold(None, str(tmp_path), point=DEDUPE_POINT)
    assert t == pytest.approx(0.83) and "precision 0.90 on dev" in how
    assert resolve_threshold("auto", str(tmp_path))[0] == pytest.approx(0.71)
    assert resolve_threshold(0.5, str(tmp_path)) == (0.5, "given")


def test_a_newer_or_unknown_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dupq.json").write_text(json.dumps({"format_version": CARD_FORMAT_VERSION + 1}))
    with pytest.raises(StoreError, match="newer dupq"):
        ModelCard.read(tmp_path)
    (tmp_path / "dupq.json").write_text(json.dumps({"format_version": "two"}))
    with pytest.raises(StoreError, match="unknown model card format version"):
        ModelCard.read(tmp_path)
    (tmp_path / "dupq.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        ModelCard.read(tmp_path)


def test_a_directory_without_a_card_reads_as_none(tmp_path: Path) -> None:
    assert ModelCard.read(tmp_path) is None and not has_card(tmp_path)
    assert ModelCard.read_or_empty(tmp_path).kind == "bi-encoder"


def test_only_the_card_module_names_the_operating_points_key() -> None:
    """dupq.json has one owner: no other module of the package spells its keys (issue 26's check)."""
    out = subprocess.run(
        ["git", "grep", "-l", '"operating_points"', "--", "dupq/*.py", "benchmarks/*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode not in (0, 1):
        pytest.skip(f"not a git checkout: {out.stderr.strip()}")
    assert out.stdout.split() == ["dupq/card.py"]
