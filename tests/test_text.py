import pandas as pd
import pytest

from dupq.text import has_content, is_blank, normalize, text_key

#: Pairs one exact-duplicate key must join: case, white space, compatibility forms, curly quotes and
#: sentence punctuation at clause ends carry no meaning.
MUST_MATCH = [
    ("How do I learn Python?", "how do i learn python"),
    ("  How do I   learn Python?? ", "How do I learn Python"),
    ("What causes inflation??", "What causes inflation?"),
    ("HOW DO I RESET A FORGOTTEN GMAIL PASSWORD?", "How do I reset a forgotten Gmail password?"),
    ("ＰＹＴＨＯＮ！", "python"),
    ("What\u2019s a closure?", "What's a closure?"),
    ("What is C#?", "what is c#"),
    ("What is C# ?", "What is C#."),
    ("Hello, world! How are you?", "hello world how are you"),
    ("\u00bfQu\u00e9 es Python?", "Qu\u00e9 es Python"),
    ("Is 3.10 out yet?!", "is 3.10 out yet"),
    ("startup idea ?", "Startup idea?"),
    ("Why is x^2 even...", "why is x^2 even"),
]
#: Pairs it must keep apart: in code, maths and versions, symbols are words.
MUST_NOT_MATCH = [
    ("What is C#?", "What is C++?"),
    ("What is C#?", "What is F#?"),
    ("What is C++?", "What is C?"),
    ("What is .NET?", "What is NET?"),
    ("+1", "-1"),
    ("Is Python 3.10 faster?", "Is Python 3.1 faster?"),
    ("How do I plot x^2?", "How do I plot x2?"),
    ("What does == mean in Python?", "What does = mean in Python?"),
    ("What does != mean in Python?", "What does = mean in Python?"),
    ("What does ! mean in bash?", "What does ? mean in bash?"),
    ("How do I learn Python?", "How do I learn Java?"),
    ("Is a/b the same as a*b?", "Is ab the same as ab?"),
    ("What is $x$?", "What is x?"),
    ("Why use i++?", "Why use i--?"),
]


@pytest.mark.parametrize(("a", "b"), MUST_MATCH)
def test_exact_key_joins_what_carries_no_meaning(a, b):
    assert text_key(a) == text_key(b), (normalize(a), normalize(b))


@pytest.mark.parametrize(("a", "b"), MUST_NOT_MATCH)
def test_exact_key_keeps_symbols_that_carry_meaning(a, b):
    assert text_key(a) != text_key(b), (normalize(a), normalize(b))


def test_normalize_is_idempotent_and_content_needs_a_letter_or_digit():
    for a, b in MUST_MATCH + MUST_NOT_MATCH:
        for t in (a, b):
            assert normalize(normalize(t)) == normalize(t)
    assert not has_content(normalize("???")) and not has_content(normalize("$$ !!"))
    assert has_content(normalize("+1"))


def test_no_table_pair_is_exact_in_the_matcher_dedupe_or_score(tiny_model, tmp_path):
    """The Matcher, dedupe and ``dupq score`` share the one key: the must-not pairs are never exact
    there, the must pairs always are."""
    from dupq.dedupe import deduplicate
    from dupq.matcher import Matcher
    from dupq.score import score_pairs

    texts = list(dict.fromkeys(t for pair in MUST_NOT_MATCH for t in pair))
    m = Matcher(tiny_model, verifier=None)
    m.add(texts)
    for a, _ in MUST_NOT_MATCH:
        hits = m.match(a, k=len(texts))
        assert [h.text for h in hits if h.exact] == [a], a
    for a, b in MUST_MATCH:
        m2 = Matcher(tiny_model, verifier=None)
        m2.add([a])
        assert m2.match(b, k=1)[0].exact, (a, b)

    pairs_csv = tmp_path / "pairs.csv"
    rows = [(a, b, 0) for a, b in MUST_NOT_MATCH] + [(a, b, 1) for a, b in MUST_MATCH]
    pd.DataFrame(rows, columns=["question1", "question2", "label"]).to_csv(pairs_csv, index=False)
    scored = score_pairs(pairs_csv, model=tiny_model, verifier=None).table
    assert (scored["status"] == "exact").tolist() == [bool(label) for *_, label in rows]

    frame = pd.DataFrame({"question": texts})
    found = tmp_path / "found.csv"
    deduplicate(frame, text_column="question", model=tiny_model, threshold=1.0, verifier=None,
                pairs_out=found, show_progress=False)  # fmt: skip
    assert pd.read_csv(found).query("kind == 'exact'").empty
    both = pd.DataFrame({"question": [t for pair in MUST_MATCH for t in pair]})
    out = tmp_path / "both.csv"
    deduplicate(both, text_column="question", model=tiny_model, threshold=1.0, verifier=None, out=out,
                show_progress=False)  # fmt: skip
    group = pd.read_csv(out)["group_id"].tolist()
    assert all(group[2 * i] == group[2 * i + 1] for i in range(len(MUST_MATCH)))


def test_text_key_equal_only_for_same_words():
    assert text_key("How do I learn Python?") == text_key("how do i learn python")
    assert text_key("How do I learn Python?") != text_key("How do I learn Java?")


def test_is_blank():
    assert is_blank(None) and is_blank(float("nan")) and is_blank("  \t")
    assert not is_blank("a") and not is_blank(0)


def test_atomic_writes_replace_whole_file_with_normal_permissions(tmp_path):
    import os
    import stat

    from dupq.io import atomic_dir, atomic_write_json, recover_dir

    target = tmp_path / "r.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode == 0o666 & ~_umask(), oct(mode)

    store = tmp_path / "store"
    with atomic_dir(store) as d:
        (d / "x").write_text("1")
    old = tmp_path / "store.old"
    os.replace(store, old)  # a kill between the two renames of the next save
    assert recover_dir(store) == store and (store / "x").read_text() == "1"


def _umask() -> int:
    import os

    m = os.umask(0)
    os.umask(m)
    return m
