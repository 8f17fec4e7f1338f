from dupq.text import is_blank, normalize, text_key


def test_normalize_folds_case_punctuation_and_space():
    assert normalize("  How do I   learn Python?? ") == "how do i learn python"
    assert normalize("ＰＹＴＨＯＮ!") == "python"  # NFKC full-width


def test_text_key_equal_only_for_same_words():
    assert text_key("How do I learn Python?") == text_key("how do i learn python")
    assert text_key("How do I learn Python?") != text_key("How do I learn Java?")


def test_is_blank():
    assert is_blank(None) and is_blank(float("nan")) and is_blank("  \t")
    assert not is_blank("a") and not is_blank(0)
