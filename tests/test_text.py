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
