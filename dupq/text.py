"""Light text normalisation shared by every exact-duplicate check (data splits, Matcher, dedupe).

"How do I learn Python?" and "how do i learn python" are the same question to a person; finding
those by hash before any model runs is free and exact. The normalisation is deliberately light
(Unicode NFKC, case folding, punctuation removed, whitespace collapsed) so that it never merges
questions that differ in words.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")
# ASCII punctuation and symbols (Unicode categories P* and S*) -> space. A table lookup in C keeps the
# common all-ASCII case ~10x faster than the per-character category test (QQP has ~540k questions).
_ASCII_PUNCT = str.maketrans({ch: " " for ch in map(chr, range(128)) if unicodedata.category(ch)[0] in "PS"})


def normalize(text: str) -> str:
    """Case-folded, punctuation-free, whitespace-collapsed form of ``text``."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        text = text.translate(_ASCII_PUNCT)
    else:
        text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return _SPACE.sub(" ", text).strip()


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
