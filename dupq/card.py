"""The model card: the one owner of ``dupq.json``, the file every dupq model directory carries.

A bi-encoder from ``dupq train``, a student from ``dupq distill``, a verifier (late interaction or
cross-encoder) and the verifier shipped inside the package all describe themselves in the same file:
what kind of model it is, what it was made from, the thresholds chosen on dev (the *operating
points*), the Platt calibration of its scores and where it came from. Every feature reads those
fields, so one type holds them and one pair of functions reads and writes them:
:meth:`ModelCard.read` / :meth:`ModelCard.write`. Nothing else opens the file.

The rules that pick an operating point live here too, named, so that dedupe and the Matcher cannot
drift apart: :data:`DEDUPE_POINT` (a dedupe merges rows, and a wrong merge hides a question, so it
works at precision 0.90 on dev when that was reached) and :data:`MATCH_POINT` (the Matcher suggests,
so it works at the best dev F1).

The JSON layout is the one dupq has always written (``threshold``, ``calibration``,
``operating_points``, ``kind`` …); fields this type does not name are kept in :attr:`ModelCard.extra`
and written back unchanged, so reading and writing a card never loses anything. ``format_version``
guards the layout: a card from a newer dupq is refused with a clear error instead of being misread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dupq.errors import StoreError

CARD_FILE = "dupq.json"
#: The layout this dupq reads and writes. Version 1 is every card written so far (cards without the
#: field are version 1 too).
CARD_FORMAT_VERSION = 1
#: dedupe's operating point: precision 0.90 on dev (a wrong merge hides a question).
DEDUPE_POINT = "precision_0.90"
#: A point a recipe chose for dedupe on dev by its own stated rule (the shipped verifier's: the highest
#: recall at half the stock cosine's wrong-merge rate); preferred to :data:`DEDUPE_POINT` when present.
DEDUPE_CHOSEN = "dedupe"
#: The Matcher's operating point: the best dev F1 (it suggests; a person decides).
MATCH_POINT = "best_f1"

# JSON key -> attribute, for the fields the card names (everything else goes to ``extra``).
_FIELDS = {
    "format_version": "format_version",
    "kind": "kind",
    "base_model": "base",
    "fingerprint": "fingerprint",
    "threshold": "threshold",
    "calibration": "calibration",
    "operating_points": "operating_points",
    "provenance": "provenance",
    "verifier": "verifier",
    "encoder": "encoder",
    "features": "features",
}


@dataclass
class ModelCard:
    """What ``dupq.json`` says about a model directory.

    ``threshold`` is the model's own cosine (bi-encoder, student) or probability (verifier) threshold
    at its best dev F1; ``operating_points`` maps a point name (``best_f1``, ``best_accuracy``,
    ``precision_0.90`` …) to ``{"threshold", "precision", "recall", "f1", "reached", …}``;
    ``calibration`` holds the Platt ``coef``/``intercept`` that turn a raw score into P(duplicate);
    ``provenance`` says what it was made from (data sets with sizes and licences, command, commit);
    ``verifier`` holds a verifier's own fields (``type``, ``head``, dev scores …), ``encoder`` how a
    verifier names the encoder whose token vectors it reads, ``features`` its feature names.
    """

    kind: str = "bi-encoder"
    base: str | None = None
    fingerprint: str | None = None
    threshold: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    operating_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    verifier: dict[str, Any] | None = None
    encoder: str | None = None
    features: list[str] | None = None
    format_version: int = CARD_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # -- the operating-point rules ----------------------------------------------------------------
    def point(self, name: str) -> dict[str, Any] | None:
        """The operating point ``name`` when dev reached it (``reached`` absent counts as reached)."""
        chosen = (self.operating_points or {}).get(name)
        if isinstance(chosen, dict) and chosen.get("threshold") is not None and chosen.get("reached", True):
            return chosen
        return None

    def threshold_at(self, point: str | None = None) -> float | None:
        """The threshold of operating point ``point`` when reached on dev, else the best-F1
        ``threshold``, else ``None`` (the caller's default applies)."""
        chosen = self.point(point) if point else None
        if chosen is not None:
            return float(chosen["threshold"])
        return None if self.threshold is None else float(self.threshold)

    def dedupe_point(self) -> dict[str, Any] | None:
        """The point dedupe decides at: :data:`DEDUPE_CHOSEN` when the card has it, else
        :data:`DEDUPE_POINT` (both only when reached on dev)."""
        return self.point(DEDUPE_CHOSEN) or self.point(DEDUPE_POINT)

    def threshold_source(self, point: str | None, where: str) -> str:
        """Words for where :meth:`threshold_at` took its value (for summaries and logs)."""
        if point and self.point(point) is not None:
            return f"dupq.json of {where}, {point.replace('_', ' ')} on dev"
        return f"dupq.json of {where}"

    @property
    def is_verifier(self) -> bool:
        return self.kind == "verifier"

    # -- conversion -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object, in dupq's historical layout (unset optional fields are left out)."""
        out: dict[str, Any] = {"format_version": self.format_version, "kind": self.kind}
        for key, attr in _FIELDS.items():
            if key in out:
                continue
            value = getattr(self, attr)
            if value is None or (isinstance(value, dict) and not value and key != "operating_points"):
                continue
            out[key] = value
        if not self.operating_points:
            out.pop("operating_points", None)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "dupq.json") -> ModelCard:
        """A card from a parsed ``dupq.json``; a newer or unknown format version is a ``StoreError``."""
        if not isinstance(data, dict):
            raise StoreError(f"{where} is not a JSON object")
        version = data.get("format_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StoreError(f"{where}: unknown model card format version {version!r}")
        if version > CARD_FORMAT_VERSION:
            raise StoreError(
                f"{where}: model card format version {version} was written by a newer dupq "
                f"(this one reads up to {CARD_FORMAT_VERSION}); upgrade dupq to use this model"
            )
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            attr = _FIELDS.get(key)
            if attr is None:
                extra[key] = value
            elif value is not None:
                kwargs[attr] = value
        kwargs.setdefault("kind", "bi-encoder")
        return cls(**kwargs, extra=extra)

    # -- files ------------------------------------------------------------------------------------
    @classmethod
    def path(cls, directory: str | Path) -> Path:
        return Path(directory) / CARD_FILE

    @classmethod
    def read(cls, directory: str | Path | None) -> ModelCard | None:
        """The card of ``directory``, or ``None`` when it has no ``dupq.json`` (a plain model)."""
        if directory is None:
            return None
        path = cls.path(directory)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path} is not valid JSON: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        return cls.from_dict(data, where=str(path))

    @classmethod
    def read_or_empty(cls, directory: str | Path | None) -> ModelCard:
        """:meth:`read`, with an empty bi-encoder card where there is no ``dupq.json``."""
        return cls.read(directory) or cls()

    def write(self, directory: str | Path) -> Path:
        """Write ``dupq.json`` into ``directory`` atomically (temp file, fsync, rename)."""
        from dupq.io import atomic_write_json

        path = self.path(directory)
        atomic_write_json(path, self.to_dict())
        return path


def decision_fields(
    threshold: float | None,
    calibration: dict[str, Any] | None,
    operating_points: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A card's decision fields under their JSON names, for writers that assemble a card from parts
    (training, students): the names stay owned here. ``calibration=None`` leaves it out."""
    out: dict[str, Any] = {"threshold": threshold, "operating_points": operating_points}
    if calibration is not None:
        out["calibration"] = calibration
    return out


def has_card(directory: str | Path | None) -> bool:
    """Whether ``directory`` carries a ``dupq.json``."""
    return directory is not None and ModelCard.path(directory).is_file()


__all__ = [
    "CARD_FILE",
    "CARD_FORMAT_VERSION",
    "DEDUPE_CHOSEN",
    "DEDUPE_POINT",
    "MATCH_POINT",
    "ModelCard",
    "decision_fields",
    "has_card",
]
