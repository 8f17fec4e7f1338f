"""Near-miss training data (``dupq train --augment near-miss``): labelled pairs made from the user's own.

Duplicate detection fails on questions that share almost every word and still ask something else —
"flights from Paris to Rome" / "from Rome to Paris", "type 1 diabetes" / "type 2 diabetes", "Python on
Windows" / "on Linux". Real pair files hold few of these, so a model never learns that one slot
matters. This module writes them, from every question in a pair file, by rules a person can check:

* **order swaps** around an asymmetric connective (*from A to B*, *A better than B*, *A before B*):
  a negative; around a symmetric one (*A vs B*, *A or B*, *A and B*): a positive — order alone does
  not change the question there;
* **one-slot substitutions**: a number, a year, a version, or a value of a known kind (programming
  language, operating system, country, language, month, company …) replaced by *another value of the
  same kind seen in the corpus*: a negative;
* **noise positives**: the same question with a typo (two adjacent letters swapped) and its trailing
  punctuation dropped — what real duplicates look like.

Generated pairs get ``augment`` set to their rule and fresh qids (``aug-…``) so that they never join a
real question's component. Nothing is generated from a self-pair (same normalised text on both sides),
and every generated pair differs after normalisation. Apply it to the *train* split only.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from dupq.errors import InputError
from dupq.text import normalize, text_key

AUGMENT_KINDS = ("swap", "substitute", "noise")

#: Values of the same kind, for one-slot substitutions (only values seen in the corpus are used).
SLOT_KINDS: dict[str, tuple[str, ...]] = {
    "programming language": (
        "Python", "Java", "JavaScript", "C++", "C#", "Ruby", "PHP", "Go", "Rust", "Swift", "Kotlin",
        "Scala", "Perl", "R", "MATLAB", "TypeScript", "Haskell",
    ),
    "operating system": ("Windows", "Linux", "Ubuntu", "macOS", "Mac", "Android", "iOS", "Debian", "Fedora"),
    "country": (
        "India", "China", "Japan", "USA", "US", "UK", "Canada", "Australia", "Germany", "France", "Italy",
        "Spain", "Russia", "Brazil", "Mexico", "Pakistan", "Singapore", "Dubai", "Nigeria", "Korea",
    ),
    "language": (
        "English", "Spanish", "French", "German", "Hindi", "Chinese", "Japanese", "Russian", "Arabic",
        "Italian", "Portuguese", "Korean",
    ),
    "month": (
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December",
    ),
    "company": ("Google", "Amazon", "Facebook", "Apple", "Microsoft", "Netflix", "Uber", "Tesla", "Quora"),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}  # fmt: skip
_KIND_OF = {v.lower(): kind for kind, values in SLOT_KINDS.items() for v in values}

_PHRASE = r"[A-Za-z0-9][\w+#.'-]*(?: [A-Z0-9][\w+#.'-]*)?"
_ASYMMETRIC = [
    re.compile(rf"\b(?P<pre>from )(?P<a>{_PHRASE}) (?P<mid>to )(?P<b>{_PHRASE})\b"),
    re.compile(rf"\b(?P<a>{_PHRASE}) (?P<mid>(?:\w+er|more \w+|less \w+) than )(?P<b>{_PHRASE})\b"),
    re.compile(r"\b(?P<a>\w+ing) (?P<mid>(?:before|after) )(?P<b>\w+ing)\b"),
]
_SYMMETRIC = re.compile(rf"\b(?P<a>{_PHRASE}) (?P<mid>(?:vs\.?|versus|or|and) )(?P<b>{_PHRASE})\b")
#: Words that never stand as a swapped phrase (swapping them gives nonsense, not a near miss).
_NOT_PHRASE = frozenset(
    """i you we they he she it is are was do does did can could should would will what how why when where
    which who the a an my your our their this that these those to of in on for with be get go make more
    less better worse not no before after then first""".split()
)
_YEAR = re.compile(r"\b(19[5-9]\d|20[0-4]\d)\b")
_VERSION = re.compile(r"\b(\d+(?:\.\d+)+)\b")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,4})(?![\w.])")
_WORD = re.compile(r"[A-Za-z][A-Za-z+#]*")


@dataclass(frozen=True)
class Generated:
    """One generated pair: the two texts, its label and the rule that made it."""

    question1: str
    question2: str
    label: int
    rule: str


def swaps(text: str) -> list[Generated]:
    """Order swaps of ``text``: negatives around asymmetric connectives, positives around symmetric ones."""
    out: list[Generated] = []
    starts = [m.start() for m in re.finditer(r"\b\w", text)]
    for pattern, label, rule in [(p, 0, "swap") for p in _ASYMMETRIC] + [(_SYMMETRIC, 1, "swap-symmetric")]:
        for pos in starts:  # every word start, so "Is Python …" does not hide "Python …"
            m = pattern.match(text, pos)
            if m is None:
                continue
            a, b = m.group("a"), m.group("b")
            if a.lower() == b.lower() or a.split()[0].lower() in _NOT_PHRASE:
                continue
            if {a.lower(), b.lower(), b.split()[-1].lower()} & _NOT_PHRASE:
                continue
            (sa, ea), (sb, eb) = m.span("a"), m.span("b")
            out.append(Generated(text, text[:sa] + b + text[ea:sb] + a + text[eb:], label, rule))
            break  # one swap per connective kind is enough
    return out


def substitutions(text: str, seen: dict[str, list[str]], rng: random.Random) -> list[Generated]:
    """One-slot substitutions of ``text`` with other values of the same kind from ``seen``."""
    out: list[Generated] = []
    for kind, pattern in (("year", _YEAR), ("version", _VERSION), ("number", _NUMBER)):
        m = pattern.search(text)
        if m is None:
            continue
        # a number keeps its magnitude (type 2 -> type 1, not type 2004)
        choices = [v for v in seen.get(kind, ()) if v != m.group(1) and len(v) == len(m.group(1))]
        if choices:
            new = rng.choice(choices)
            out.append(Generated(text, text[: m.start(1)] + new + text[m.end(1) :], 0, f"substitute-{kind}"))
        break
    for m in _WORD.finditer(text):
        kind = _KIND_OF.get(m.group(0).lower())
        if kind is None:
            continue
        present = {w.lower() for w in _WORD.findall(text)}
        choices = [v for v in seen.get(kind, ()) if v.lower() not in present]
        if choices:
            new = rng.choice(choices)
            out.append(Generated(text, text[: m.start()] + new + text[m.end() :], 0, "substitute-slot"))
            break
    return out


def noise(text: str, rng: random.Random) -> Generated | None:
    """A typo (two adjacent letters swapped in one long word) plus trailing punctuation dropped."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text) if m.end() - m.start() >= 5]
    if not words:
        return None
    start, end = rng.choice(words)
    i = rng.randrange(start + 1, end - 2)
    chars = list(text)
    if chars[i] == chars[i + 1]:
        return None
    chars[i], chars[i + 1] = chars[i + 1], chars[i]
    noisy = "".join(chars).rstrip(" ?!.")
    return Generated(text, noisy, 1, "noise")


def seen_values(texts: Iterable[str]) -> dict[str, list[str]]:
    """Slot values present in the corpus, by kind (substitutions only use these)."""
    found: dict[str, set[str]] = {}
    for t in texts:
        for kind, pattern in (("year", _YEAR), ("version", _VERSION), ("number", _NUMBER)):
            found.setdefault(kind, set()).update(pattern.findall(t))
        for w in _WORD.findall(t):
            kind = _KIND_OF.get(w.lower())
            if kind and w[0].isupper():  # as people write it ("uber" in running text is not the company)
                found.setdefault(kind, set()).add(w)
    return {k: sorted(v) for k, v in found.items()}


def near_miss_pairs(
    pairs: pd.DataFrame,
    *,
    kinds: Iterable[str] = AUGMENT_KINDS,
    per_question: int = 1,
    noise_rate: float = 0.15,
    seed: int = 42,
) -> pd.DataFrame:
    """Generated pairs for the questions of ``pairs`` (canonical columns ``question1, question2``).

    At most ``per_question`` swap/substitution pairs per distinct question, and noise positives for a
    ``noise_rate`` share of them. Returns canonical pair columns plus ``augment`` (the rule).
    """
    kinds = set(kinds)
    unknown = kinds - set(AUGMENT_KINDS)
    if unknown:
        raise InputError(f"unknown augmentation kind(s) {sorted(unknown)}; known: {', '.join(AUGMENT_KINDS)}")
    rng = random.Random(seed)
    keep = [normalize(a) != normalize(b) for a, b in zip(pairs["question1"], pairs["question2"], strict=True)]
    real = pairs[keep]
    questions = list(dict.fromkeys(list(real["question1"]) + list(real["question2"])))
    seen = seen_values(questions) if "substitute" in kinds else {}
    made: list[Generated] = []
    for q in questions:
        options: list[Generated] = []
        if "swap" in kinds:
            options += swaps(q)
        if "substitute" in kinds:
            options += substitutions(q, seen, rng)
        rng.shuffle(options)
        made += options[:per_question]
        if "noise" in kinds and rng.random() < noise_rate:
            n = noise(q, rng)
            if n is not None:
                made.append(n)
    return _frame([g for g in made if text_key(g.question1) != text_key(g.question2)])


def _frame(made: list[Generated]) -> pd.DataFrame:
    rows = {
        "qid1": [f"aug-{text_key(g.question1)[:16]}" for g in made],
        "qid2": [f"aug-{text_key(g.question2)[:16]}" for g in made],
        "question1": [g.question1 for g in made],
        "question2": [g.question2 for g in made],
        "label": [g.label for g in made],
        "augment": [g.rule for g in made],
    }
    return pd.DataFrame({k: pd.Series(v, dtype=object if k != "label" else "int64") for k, v in rows.items()})


def augment_pairs(pairs: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """``pairs`` with :func:`near_miss_pairs` appended (``augment`` empty on the original rows)."""
    extra = near_miss_pairs(pairs, **kwargs)
    base = pairs.copy()
    base["augment"] = ""
    return pd.concat([base, extra], ignore_index=True)
