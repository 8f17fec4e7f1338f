"""What the Matcher answers: a :class:`Match` per stored question, a :class:`QueryMatches` per query.

Moved out of ``dupq.datamodels`` (split by domain), shared by :mod:`dupq.matcher`, :mod:`dupq.rescore`
and the HTTP service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


# ================================================================================================
# Matcher results (dupq.matcher)
# ================================================================================================
@dataclass(frozen=True)
class Match:
    """One stored question returned for a query, best first.

    ``score`` is the cosine similarity (1.0 for an exact duplicate after normalisation, found by hash);
    ``probability`` the calibrated P(duplicate) when the model's ``dupq.json`` has a calibration, else
    ``None``; ``is_duplicate`` is ``score >= threshold``; ``exact`` says it was found by hash.
    With a verifier, ``score`` and ``probability`` are the verifier's P(duplicate) and ``is_duplicate``
    its decision; ``similarity`` is always the bi-encoder cosine. ``decided_by`` names the stage that
    decided: ``exact`` (same exact-duplicate key), ``verifier`` or ``cosine``.
    """

    id: int
    text: str
    score: float
    probability: float | None
    is_duplicate: bool
    metadata: dict[str, Any] | None = None
    exact: bool = False
    similarity: float | None = None
    decided_by: str = "cosine"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "score": round(float(self.score), 6),
            "similarity": None if self.similarity is None else round(float(self.similarity), 6),
            "probability": None if self.probability is None else round(float(self.probability), 6),
            "is_duplicate": bool(self.is_duplicate),
            "exact": bool(self.exact),
            "decided_by": self.decided_by,
            "metadata": self.metadata,
        }


class QueryMatches(list):
    """The ranked :class:`Match` list of one query, plus what happened to the query itself.

    A plain ``list`` (index it, iterate it, ``len`` it) with two attributes: ``query`` (the text) and
    ``truncated`` (the query had more tokens than the model reads, so only its beginning was matched).
    """

    def __init__(self, matches: list[Match] = (), *, query: str = "", truncated: bool = False) -> None:
        super().__init__(matches)
        self.query = query
        self.truncated = truncated

    @property
    def best(self) -> Match | None:
        return self[0] if self else None

    @property
    def duplicates(self) -> list[Match]:
        return [m for m in self if m.is_duplicate]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "truncated": self.truncated, "matches": [m.to_dict() for m in self]}

    def __repr__(self) -> str:
        return f"QueryMatches(query={self.query!r}, truncated={self.truncated}, {list.__repr__(self)})"


def format_matches(results: Sequence[QueryMatches], width: int = 70) -> str:
    """A plain-text table per query (what ``dupq match`` prints)."""
    lines: list[str] = []
    for r in results:
        lines.append(f"query: {r.query}" + ("  [truncated to the model's length]" if r.truncated else ""))
        if not r:
            lines.append("  (no stored questions)")
        else:
            lines.append(f"  {'#':>2}  {'id':>8}  {'score':>6}  {'P(dup)':>6}  {'dup':<3}  {'by':<8}  text")
        for rank, m in enumerate(r, start=1):
            p = "-" if m.probability is None else f"{m.probability:.3f}"
            text = m.text if len(m.text) <= width else m.text[: width - 1] + "…"
            flag = "yes" if m.is_duplicate else "no"
            lines.append(
                f"  {rank:>2}  {m.id:>8}  {m.score:>6.3f}  {p:>6}  {flag:<3}  {m.decided_by:<8}  {text}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
