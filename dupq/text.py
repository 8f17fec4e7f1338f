"""The exact-duplicate key shared by every exact check (data splits, Matcher, dedupe, ``dupq score``).

"How do I learn Python?" and "how do i learn python" are the same question to a person; finding
those by hash before any model runs is free and exact. But an exact duplicate is decided with score
1.0 and no model ever looks at it again, so the key may only ignore what never carries meaning:

* Unicode compatibility forms (NFKC: full-width letters, ligatures), case, and runs of white space;
* curly quotes against straight ones;
* sentence punctuation (``? ! . , ; :``) at the end of the text, or closing a word before a space
  ("Hello, world!" is "hello world"), and an opening ``¿``/``¡``.

Everything else stays, because in questions about code, maths and versions symbols are words:
``C#``/``C++``/``F#``, ``.NET``/``NET``, ``+1``/``-1``, ``3.10``/``3.1``, ``x^2``/``x2``, ``==``/``=``,
``!=``. (Until key version 2 every punctuation mark and symbol was dropped, which made "What is C#?"
an exact duplicate of "What is C++?".) :data:`KEY_VERSION` names the rule, so that a store built
with another rule re-keys its texts instead of mixing two rules.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: The version of the :func:`normalize` rule (stores record it; another version is re-keyed on load).
KEY_VERSION = 2

_SPACE = re.compile(r"\s+")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"',
                         "\u201d": '"', "\u201f": '"', "\u2033": '"'})  # fmt: skip
#: Sentence punctuation at the very end (with any white space among it).
_TRAILING = re.compile(r"[\s?!.,;:\u2026]+$")
#: Sentence punctuation closing a word before white space ("hello, world" / "why? because"). The
#: look-behind excludes white space and the marks themselves, so a mark standing alone ("what does
#: ! mean") is kept: there it is the subject of the question.
_CLAUSE = re.compile(r"(?<=[^\s?!.,;:\u2026])[?!.,;:\u2026]+(?=\s)")
_LEADING = re.compile(r"^[\s\u00bf\u00a1]+")


def normalize(text: str) -> str:
    """The exact-duplicate form of ``text``: NFKC, case-folded, sentence punctuation at clause ends
    dropped, white space collapsed; every other symbol kept (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)
    text = _TRAILING.sub("", _LEADING.sub("", text))
    text = _CLAUSE.sub("", text)
    return _SPACE.sub(" ", text).strip()


def has_content(normalized: str) -> bool:
    """Whether a normalised text holds a letter or a digit: one of only symbols ("???", "$$") is not a
    question a model could compare."""
    return any(ch.isalnum() for ch in normalized)


def text_key(text: str) -> str:
    """A 128-bit hex digest of :func:`normalize` — the exact-duplicate key."""
    return normalized_key(normalize(text))


def normalized_key(normalized: str) -> str:
    """:func:`text_key` of a text already passed through :func:`normalize` (saves normalising twice)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).hexdigest()


def is_blank(value: object) -> bool:
    """True for None, NaN and whitespace-only strings: nothing a model could encode.

    Other non-strings (numbers, bytes …) are not blank: callers decide whether they are text."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    if not isinstance(value, str):
        return False
    return not value.strip()
