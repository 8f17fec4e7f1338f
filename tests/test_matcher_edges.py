"""API edges of the Matcher (issue 10, item 7): a huge k, bad ids to remove, non-ASCII digits as ids,
and a manifest whose fields have the wrong type."""

from __future__ import annotations

import json
import time

import pytest

from dupq.embed import Embedder
from dupq.errors import InputError, StoreError
from dupq.matcher import Matcher
from tests.tiny_model import sample_questions


@pytest.fixture(scope="module")
def embedder(tiny_model) -> Embedder:
    return Embedder(tiny_model)


@pytest.fixture()
def matcher(embedder) -> Matcher:
    m = Matcher(embedder)
    m.add(sample_questions(30, seed=11))
    return m


@pytest.mark.parametrize("k", [10**8, 10**12])
def test_a_huge_k_is_clamped_to_the_store_size(matcher, embedder, monkeypatch, k):
    asked = []
    real = matcher.index.search
    monkeypatch.setattr(matcher.index, "search", lambda q, kk: asked.append(kk) or real(q, kk))
    t0 = time.perf_counter()
    res = matcher.match(["a brand new question about clocks?"], k=k, exact_first=False)
    assert time.perf_counter() - t0 < 30
    assert asked == [30]  # never an n-by-10**8 result matrix (4 GB of it before)
    assert len(res[0]) == 30
    # an empty store: no search at all, and no k-wide placeholder either
    empty = Matcher(embedder)
    assert len(empty.match("anything at all?", k=k)) == 0


@pytest.mark.parametrize("bad", ["abc", None, 1.5, -3, "١٢", [1, "x"], [None], {"a": 1}, b"7"])
def test_remove_refuses_what_is_not_an_id(matcher, bad):
    with pytest.raises(InputError) as info:
        matcher.remove(bad)
    assert info.value.column == "id"
    assert len(matcher) == 30  # nothing removed


def test_remove_still_takes_ints_lists_and_digit_strings(matcher):
    assert matcher.remove(0) == 1
    assert matcher.remove([1, 2, 2]) == 2
    assert matcher.remove("3") == 1 and matcher.remove(["4"]) == 1
    assert len(matcher) == 25


@pytest.mark.parametrize("bad", ["١٢", "１２", "²", "1_000", " 12 3"])
def test_non_ascii_digit_ids_are_refused(matcher, bad):
    with pytest.raises(InputError, match="not a non-negative integer"):
        matcher.add(["a question with an exotic id?"], ids=[bad])
    assert len(matcher) == 30
    assert matcher.add(["a question with a plain id?"], ids=[" +777 "]) == [777]


@pytest.mark.parametrize(
    ("field", "value"),
    [("dim", "32"), ("dim", 32.0), ("dim", True), ("count", "30"), ("next_id", -1), ("threshold", "0.8")],
)
def test_a_manifest_field_of_the_wrong_type_is_a_clear_store_error(matcher, embedder, tmp_path, field, value):
    store = tmp_path / "store"
    matcher.save(store)
    path = store / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[field] = value
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=rf"manifest field '{field}' is {value!r}"):
        Matcher.load(store, embedder)
