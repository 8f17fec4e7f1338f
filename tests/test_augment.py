"""Near-miss augmentation: each rule on hand-written cases, labels, well-formed texts, no self-pairs."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from dupq.augment import augment_pairs, near_miss_pairs, noise, seen_values, substitutions, swaps
from dupq.text import normalize


def test_asymmetric_swaps_are_negatives():
    got = {g.question2: g.label for g in swaps("Cheapest flights from New York to Boston?")}
    assert got == {"Cheapest flights from Boston to New York?": 0}
    got = {g.question2: g.label for g in swaps("Is Python faster than Java?")}
    assert got == {"Is Java faster than Python?": 0}


def test_symmetric_swaps_are_positives():
    got = {g.question2: g.label for g in swaps("Python vs Java for web development?")}
    assert got == {"Java vs Python for web development?": 1}
    assert {g.question2 for g in swaps("Is it better to rent or buy a house?")} == {
        "Is it better to buy or rent a house?"
    }


def test_swaps_leave_function_words_alone():
    # "running or after": swapping a function word would make nonsense, not a near miss
    assert swaps("Should I stretch before running or after?") == []
    assert swaps("How do I learn to code?") == []


def test_substitutions_use_values_of_the_same_kind_seen_in_the_corpus():
    seen = seen_values(["Linux is fine", "Ruby on Rails", "Japan in 2004", "2 or 3 things"])
    rng = random.Random(0)
    out = {g.rule: g for g in substitutions("How do I learn Python on Windows?", seen, rng)}
    slot = out["substitute-slot"]
    assert slot.label == 0
    assert slot.question2 in {"How do I learn Ruby on Windows?", "How do I learn Python on Linux?"}
    years = substitutions("What happened in 1998?", seen, rng)
    assert [g.question2 for g in years] == ["What happened in 2004?"]
    # a number keeps its magnitude: type 2 -> type 3, never type 2004
    nums = substitutions("Early signs of type 2 diabetes?", seen, rng)
    assert [g.question2 for g in nums] == ["Early signs of type 3 diabetes?"]


def test_substitution_never_picks_a_value_already_in_the_question():
    seen = seen_values(["Java", "Python"])
    for seed in range(10):
        for g in substitutions("Is Python faster than Java?", seen, random.Random(seed)):
            assert g.question2 != "Is Java faster than Java?"


def test_noise_is_a_positive_typo_of_the_same_question():
    g = noise("How do I improve my handwriting?", random.Random(3))
    assert g is not None and g.label == 1
    assert not g.question2.endswith("?")
    assert sorted(g.question2.replace(" ", "")) == sorted("How do I improve my handwriting".replace(" ", ""))
    assert normalize(g.question2) != normalize(g.question1)
    assert noise("Why?", random.Random(0)) is None  # no word long enough for a typo


def test_near_miss_pairs_skip_self_pairs_and_never_emit_one():
    pairs = pd.DataFrame(
        {
            "question1": ["Flights from Paris to Rome?", "Is Python faster than Java?"],
            "question2": ["Flights from Paris to Rome ?", "How fast is Python compared with Java?"],
            "label": [1, 1],
        }
    )
    out = near_miss_pairs(pairs, seed=0)
    # the first pair is a self-pair after normalisation: nothing comes from its question
    assert not out["question1"].str.contains("Paris").any()
    assert len(out) > 0
    assert all(normalize(a) != normalize(b) for a, b in zip(out.question1, out.question2, strict=True))
    assert set(out["label"]) <= {0, 1}
    assert out["qid1"].str.startswith("aug-").all() and out["qid2"].str.startswith("aug-").all()
    for text in out["question2"]:
        assert text == text.strip() and "  " not in text


def test_augment_pairs_keeps_every_original_row_and_marks_new_ones():
    pairs = pd.DataFrame(
        {
            "qid1": ["1", "3"],
            "qid2": ["2", "4"],
            "question1": ["Is Python faster than Java?", "Cheap flights from London to Madrid?"],
            "question2": ["Which is quicker, Python or Java?", "How do I fly cheaply to Madrid?"],
            "label": [1, 0],
        }
    )
    out = augment_pairs(pairs, seed=1)
    assert out.iloc[:2][["question1", "question2", "label"]].values.tolist() == (
        pairs[["question1", "question2", "label"]].values.tolist()
    )
    assert (out["augment"].iloc[:2] == "").all()
    assert (out["augment"].iloc[2:] != "").all()
    assert "Cheap flights from Madrid to London?" in set(out["question2"])


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation"):
        near_miss_pairs(pd.DataFrame({"question1": ["a"], "question2": ["b"]}), kinds=["shuffle"])
