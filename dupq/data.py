"""Read labelled question pairs from the formats people actually have, and split them without leakage.

Every reader returns the same canonical table (:data:`~dupq.pairdata.PAIR_COLUMNS`: ``qid1``, ``qid2``,
``question1``, ``question2``, ``label``, ``source_row``) inside a :class:`~dupq.pairdata.PairData` that
also accounts for every input row it did not keep — a pair with an empty question, a label that is not
0/1, or a question paired with itself is reported by row number, never silently dropped.

Why the split is by question components: in Quora Question Pairs the same question appears in many
pairs. A random *pair* split puts "How do I learn Python?" in train and again in test, and the test
score then measures memorisation. :func:`split_pairs` joins questions that share a qid *or* a
normalised text into connected components and assigns whole components to one split.

This module finds and reads the sources (files, the Hugging Face hub, the shared sets) and splits them;
the formats themselves — their columns, header detection and the per-row checks — are
:mod:`dupq.pairformats`, whose public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from dupq.delimited import (
    Table,
    data_suffix,
    decode,
    first_record,
    guess_delimiter,
    parse,
    strict_parse,
    table_from_frame,
)
from dupq.errors import DupqError, InputError
from dupq.io import sha256_file
from dupq.pairdata import PairData, Splits
from dupq.pairformats import (  # noqa: F401  (the format names stay importable from dupq.data)
    FORMATS,
    LABEL_COLUMNS,
    MQP_COLUMNS,
    MRPC_COLUMNS,
    MRPC_GLUE_COLUMNS,
    QID_COLUMN_PAIRS,
    QUORA_COLUMNS,
    SEMEVAL_COLUMNS,
    TEXT_COLUMN_PAIRS,
    build_pair_data,
    check_not_unlabelled,
    detect_format,
    fixed_spec,
    generic_spec,
    parse_label,
)
from dupq.splits import question_components, split_pairs  # noqa: F401  (dupq.data.split_pairs stays)
from dupq.tables import read_table

#: Shared evaluation sets (``../shared/data``): name -> (relative path, format). Not shipped.
SHARED_SETS = {
    "mqp": ("medical-question-pairs/mqp.tsv", "mqp"),
    "semeval-cqa": ("semeval2016-task3-cqa-subtaskB/train-part2.tsv", "semeval-cqa"),
    "mrpc": ("mrpc/train.tsv", "mrpc"),
    "mrpc-test": ("mrpc/test.tsv", "mrpc"),
    "quora-bimpm": ("quora-bimpm/dev.tsv", "generic"),
    "paws-qqp": ("paws-qqp-train/train.tsv", "generic"),
    "paws-wiki": ("paws-wiki/dev.tsv", "generic"),
}

#: Hugging Face data sets with known schemas: alias -> (hub id, subset, split renames).
HF_SETS = {
    "sentence-transformers/quora-duplicates": ("sentence-transformers/quora-duplicates", "pair-class", {}),
    "glue/qqp": ("nyu-mll/glue", "qqp", {"dev": "validation"}),
    "nyu-mll/glue/qqp": ("nyu-mll/glue", "qqp", {"dev": "validation"}),
}


# --------------------------------------------------------------------------------------------------
# Reading


def load_pairs(
    path: str | Path,
    *,
    fmt: str = "auto",
    question1: str | None = None,
    question2: str | None = None,
    label: str | None = None,
    qid1: str | None = None,
    qid2: str | None = None,
    sep: str | None = None,
    encoding: str | None = None,
    strict: bool = False,
) -> PairData:
    """Read labelled pairs from ``path`` into a validated :class:`PairData`.

    ``fmt`` is one of :data:`FORMATS`; ``auto`` recognises the real headers of Quora's
    ``quora_duplicate_questions.tsv``, Kaggle's ``train.csv``, GLUE QQP ``train.tsv``/``dev.tsv``, MQP,
    SemEval CQA subtask B and MRPC, and otherwise reads a generic CSV/TSV/Parquet/JSONL whose text and
    label columns are given (``question1``, ``question2``, ``label``, optional ``qid1``/``qid2``) or
    detected from common names. Rows with problems are excluded and listed in ``issues``; with
    ``strict=True`` the first one raises :class:`InputError` naming the file, row and column.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", file=path)
    if not path.exists():
        raise InputError("no such file", file=path)
    if path.is_dir():
        raise InputError("is a directory, not a pairs file", file=path)
    overrides = {"question1": question1, "question2": question2, "label": label, "qid1": qid1, "qid2": qid2}
    has_overrides = any(v is not None for v in overrides.values())

    suffix_fmt = _suffix_kind(path)
    if suffix_fmt in {"parquet", "jsonl"}:
        if fmt not in {"auto", "generic"}:
            raise InputError(
                f"format {fmt!r} is a delimited text format, but this is {suffix_fmt}", file=path
            )
        df = read_table(path, fmt=suffix_fmt)
        table = table_from_frame(df)
        spec = generic_spec(path, list(df.columns), overrides)
        return build_pair_data(path, table, spec, fmt="generic", strict=strict, sha=sha256_file(path))

    text = decode(path, encoding)
    try:
        return _load_text(path, text, fmt, sep, overrides, has_overrides, strict)
    finally:
        strict_parse.clear()  # do not keep a large file's text alive


def _load_text(
    path: Path,
    text: str,
    fmt: str,
    sep: str | None,
    overrides: dict[str, str | None],
    has_overrides: bool,
    strict: bool,
) -> PairData:
    delim = sep or guess_delimiter(path, text)
    header = first_record(text, delim)

    if fmt == "auto":
        fmt = "generic" if has_overrides else detect_format(path, header, delim, text)
    check_not_unlabelled(path, header)

    if fmt == "quora":
        table = parse(text, delim, "csv", path)
        spec = fixed_spec(path, table, ["question1"], ["question2"], "is_duplicate", "qid1", "qid2")
    elif fmt == "kaggle":
        table = parse(text, delim if sep else ",", "csv", path)
        spec = fixed_spec(path, table, ["question1"], ["question2"], "is_duplicate", "qid1", "qid2")
    elif fmt == "glue":
        table = parse(text, delim, "none", path)
        spec = fixed_spec(path, table, ["question1"], ["question2"], "is_duplicate", "qid1", "qid2")
    elif fmt == "mqp":
        headerless = header and header[0] != "dr_id" and len(header) == len(MQP_COLUMNS)
        names = MQP_COLUMNS if headerless else None
        table = parse(text, delim, "csv" if delim == "," else "none", path, names=names)
        spec = fixed_spec(path, table, ["question1"], ["question2"], "label")
    elif fmt == "semeval-cqa":
        table = parse(text, delim, "none", path)
        spec = fixed_spec(
            path,
            table,
            ["orgq_subject", "orgq_body"],
            ["relq_subject", "relq_body"],
            "label",
            "orgq_id",
            "relq_id",
        )
    elif fmt == "mrpc":
        table = parse(text, delim, "none", path)
        if "#1 String" in table.columns:
            spec = fixed_spec(path, table, ["#1 String"], ["#2 String"], "Quality", "#1 ID", "#2 ID")
        else:
            spec = fixed_spec(path, table, ["sentence1"], ["sentence2"], "label", "id1", "id2")
    else:  # generic
        table = parse(text, delim, "csv" if delim == "," else "auto", path)
        spec = generic_spec(path, list(table.columns), overrides)
    return build_pair_data(path, table, spec, fmt=fmt, strict=strict, sha=sha256_file(path))


def _suffix_kind(path: Path) -> str | None:
    suffix = data_suffix(path)
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    return None


# --------------------------------------------------------------------------------------------------
# Hugging Face data sets


def load_hf_pairs(
    name: str = "sentence-transformers/quora-duplicates",
    split: str = "train",
    *,
    subset: str | None = None,
    question1: str | None = None,
    question2: str | None = None,
    label: str | None = None,
    cache_dir: str | Path | None = None,
    strict: bool = False,
) -> PairData:
    """Load a labelled pair set from the Hugging Face hub (or its local cache) with ``datasets``.

    Known: ``sentence-transformers/quora-duplicates`` (subset ``pair-class``: sentence1, sentence2,
    label) and ``glue/qqp`` (question1, question2, label, idx; ``dev`` means GLUE's validation split;
    its test split has no labels). Other ids are read with generic column detection. ``split`` accepts
    the ``datasets`` slicing syntax (``"train[:10000]"``). Where the hub is unreachable and the set is not
    cached, raises :class:`DupqError` naming the data set.
    """
    hub_id, default_subset, renames = HF_SETS.get(name, (name, None, {}))
    subset = subset or default_subset
    base, _, rest = split.partition("[")
    hf_split = renames.get(base, base) + (f"[{rest}" if rest else "")
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a declared dependency
        raise DupqError("the 'datasets' package is needed to load Hugging Face data sets") from exc
    try:
        ds = datasets.load_dataset(
            hub_id, subset, split=hf_split, cache_dir=str(cache_dir) if cache_dir else None
        )
    except Exception as exc:  # offline, unknown id, unknown split: all need the same advice
        raise DupqError(
            f"cannot load Hugging Face data set {name!r} (hub id {hub_id!r}, subset {subset!r}, "
            f"split {hf_split!r}): {type(exc).__name__}: {exc}. The hub may be unreachable from here "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}); download the data where it is "
            "reachable, or read a local copy with dupq.load_pairs / `dupq data inspect FILE`."
        ) from exc
    return pairs_from_hf(
        ds,
        source=f"hf:{hub_id}{'/' + subset if subset else ''}[{hf_split}]",
        question1=question1,
        question2=question2,
        label=label,
        strict=strict,
    )


def pairs_from_hf(
    dataset: Any,
    *,
    source: str = "hf-dataset",
    question1: str | None = None,
    question2: str | None = None,
    label: str | None = None,
    strict: bool = False,
) -> PairData:
    """Convert an in-memory ``datasets.Dataset`` (or anything with ``column_names`` + ``to_dict``) to
    :class:`PairData`, validating it like a file. GLUE marks unlabelled test rows with label -1: a split
    whose labels are all -1 is refused rather than reported row by row."""
    found = list(dataset.column_names)
    overrides = {"question1": question1, "question2": question2, "label": label, "qid1": None, "qid2": None}
    spec = generic_spec(Path(source), found, overrides)
    columns = dataset.to_dict()
    n = len(columns[spec.label])
    if n and all(v == -1 for v in columns[spec.label]):
        raise DupqError(
            f"{source}: every label is -1 — this split has no labels (GLUE test); use train or dev"
        )
    table = Table({c: columns[c] for c in found}, list(range(1, n + 1)), [], n)
    sha = _content_sha256(columns, [*spec.q1, *spec.q2, spec.label])
    return build_pair_data(source, table, spec, fmt="hf", strict=strict, sha=sha)


def _content_sha256(columns: dict[str, list[Any]], names: list[str]) -> str:
    """A fingerprint of in-memory data (what a file's sha256 is for files), for model metadata."""
    h = hashlib.sha256()
    for row in zip(*(columns[c] for c in names), strict=True):
        h.update("\x1f".join(str(v) for v in row).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Shared evaluation sets


def shared_data_dir() -> Path:
    """``$DUPQ_SHARED_DATA``, else ``../shared/data`` beside the repository (or the working directory)."""
    tried = []
    env = os.environ.get("DUPQ_SHARED_DATA")
    if env:
        tried.append(Path(env))
    tried.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    tried.append(Path.cwd().parent / "shared" / "data")
    for p in tried:
        if p.is_dir():
            return p
    raise DupqError(
        f"shared data not found (tried {', '.join(str(p) for p in tried)}); set DUPQ_SHARED_DATA to the "
        "folder holding medical-question-pairs/, mrpc/, semeval2016-task3-cqa-subtaskB/"
    )


def load_shared(name: str, *, strict: bool = False) -> PairData:
    """Load one of the shared evaluation sets by name (:data:`SHARED_SETS`). For tests and benchmarks:
    these sets are not shipped with dupq."""
    if name not in SHARED_SETS:
        raise DupqError(f"unknown shared data set {name!r}; known: {', '.join(SHARED_SETS)}")
    rel, fmt = SHARED_SETS[name]
    return load_pairs(shared_data_dir() / rel, fmt=fmt, strict=strict)


# --------------------------------------------------------------------------------------------------
# Splitting


def split_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    fmt: str = "auto",
    dev: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
    strict: bool = False,
    **columns: str | None,
) -> tuple[PairData, Splits]:
    """Read ``path``, split it leakage-free and save the splits to ``out_dir`` (the CLI's one call)."""
    data = load_pairs(path, fmt=fmt, strict=strict, **columns)
    if not len(data.pairs):
        raise InputError("no usable pairs to split (every row had an issue)", file=path)
    splits = split_pairs(data, dev=dev, test=test, seed=seed)
    splits.info["source"] = data.source
    splits.info["sha256"] = data.sha256
    splits.save(out_dir)
    return data, splits
