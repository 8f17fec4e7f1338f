"""Read labelled question pairs from the formats people actually have, and split them without leakage.

Every reader returns the same canonical table (:data:`~dupq.pairdata.PAIR_COLUMNS`: ``qid1``, ``qid2``,
``question1``, ``question2``, ``label``, ``source_row``) inside a :class:`~dupq.pairdata.PairData` that
also accounts for every input row it did not keep — a pair with an empty question, a label that is not
0/1, or a question paired with itself is reported by row number, never silently dropped.

Why the split is by question components: in Quora Question Pairs the same question appears in many
pairs. A random *pair* split puts "How do I learn Python?" in train and again in test, and the test
score then measures memorisation. :func:`split_pairs` joins questions that share a qid *or* a
normalised text into connected components and assigns whole components to one split.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dupq.delimited import (
    Table,
    data_suffix,
    decode,
    first_record,
    guess_delimiter,
    parse,
    show,
    strict_parse,
    table_from_frame,
    uses_csv_quoting,
)
from dupq.errors import DupqError, InputError
from dupq.io import sha256_file
from dupq.pairdata import PAIR_COLUMNS, PairData, RowIssue, Splits, empty_pairs
from dupq.splits import question_components, split_pairs  # noqa: F401  (dupq.data.split_pairs stays)
from dupq.tables import read_table
from dupq.text import is_blank, normalize, normalized_key

logger = logging.getLogger(__name__)

#: Formats :func:`load_pairs` understands (``auto`` detects one of the others from the header).
FORMATS = ("auto", "quora", "kaggle", "glue", "mqp", "semeval-cqa", "mrpc", "generic")

QUORA_COLUMNS = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
MQP_COLUMNS = ["dr_id", "question1", "question2", "label"]
MRPC_COLUMNS = ["label", "id1", "id2", "sentence1", "sentence2"]
MRPC_GLUE_COLUMNS = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
SEMEVAL_COLUMNS = ["orgq_id", "orgq_subject", "orgq_body", "relq_id", "relq_subject", "relq_body", "label"]

#: Column names :func:`load_pairs` recognises in generic files, tried in order (case-insensitive).
TEXT_COLUMN_PAIRS = [
    ("question1", "question2"),
    ("sentence1", "sentence2"),
    ("text1", "text2"),
    ("s1", "s2"),
    ("text_a", "text_b"),
    ("sentence_a", "sentence_b"),
]
LABEL_COLUMNS = ["label", "is_duplicate", "duplicate", "is_paraphrase", "labels"]
QID_COLUMN_PAIRS = [("qid1", "qid2")]

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


@dataclass
class _Spec:
    """Which source columns make each canonical column (text may join several, e.g. subject + body)."""

    q1: list[str]
    q2: list[str]
    label: str
    qid1: str | None = None
    qid2: str | None = None


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
        spec = _generic_spec(path, list(df.columns), overrides)
        return _build(path, table, spec, fmt="generic", strict=strict, sha=sha256_file(path))

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
        fmt = "generic" if has_overrides else _detect_format(path, header, delim, text)
    _check_not_unlabelled(path, header)

    if fmt == "quora":
        table = parse(text, delim, "csv", path)
        spec = _fixed_spec(path, table, ["question1"], ["question2"], "is_duplicate", "qid1", "qid2")
    elif fmt == "kaggle":
        table = parse(text, delim if sep else ",", "csv", path)
        spec = _fixed_spec(path, table, ["question1"], ["question2"], "is_duplicate", "qid1", "qid2")
    elif fmt == "glue":
        table = parse(text, delim, "none", path)
        spec = _fixed_spec(path, table, ["question1"], ["question2"], "is_duplicate", "qid1", "qid2")
    elif fmt == "mqp":
        headerless = header and header[0] != "dr_id" and len(header) == len(MQP_COLUMNS)
        names = MQP_COLUMNS if headerless else None
        table = parse(text, delim, "csv" if delim == "," else "none", path, names=names)
        spec = _fixed_spec(path, table, ["question1"], ["question2"], "label")
    elif fmt == "semeval-cqa":
        table = parse(text, delim, "none", path)
        spec = _fixed_spec(
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
            spec = _fixed_spec(path, table, ["#1 String"], ["#2 String"], "Quality", "#1 ID", "#2 ID")
        else:
            spec = _fixed_spec(path, table, ["sentence1"], ["sentence2"], "label", "id1", "id2")
    else:  # generic
        table = parse(text, delim, "csv" if delim == "," else "auto", path)
        spec = _generic_spec(path, list(table.columns), overrides)
    return _build(path, table, spec, fmt=fmt, strict=strict, sha=sha256_file(path))


def _suffix_kind(path: Path) -> str | None:
    suffix = data_suffix(path)
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    return None


def _check_not_unlabelled(path: Path, header: list[str]) -> None:
    """GLUE ``test.tsv`` and Kaggle ``test.csv`` carry no labels: say so instead of 'missing column'."""
    names = [h.strip() for h in header]
    if names == ["id", "question1", "question2"]:
        raise InputError(
            "this is GLUE QQP test.tsv, which has no labels (GLUE keeps them private); "
            "use train.tsv or dev.tsv for training and evaluation",
            file=path,
            column="is_duplicate",
        )
    if names == ["test_id", "question1", "question2"]:
        raise InputError(
            "this is Kaggle's Quora test.csv, which has no labels; use train.csv",
            file=path,
            column="is_duplicate",
        )


def _detect_format(path: Path, header: list[str], delim: str, text: str) -> str:
    names = [h.strip() for h in header]
    if names == QUORA_COLUMNS:
        if delim == ",":
            return "kaggle"
        # Quora's original file and GLUE's QQP share the header; Quora's is CSV-quoted, GLUE's is not.
        if "quora" in path.name.lower():
            return "quora"
        return "quora" if uses_csv_quoting(text, delim) else "glue"
    if names == MQP_COLUMNS:
        return "mqp"
    if names in (MRPC_COLUMNS, MRPC_GLUE_COLUMNS):
        return "mrpc"
    if all(c in names for c in SEMEVAL_COLUMNS):
        return "semeval-cqa"
    return "generic"


def _fixed_spec(
    path: Path,
    table: Table,
    q1: list[str],
    q2: list[str],
    label: str,
    qid1: str | None = None,
    qid2: str | None = None,
) -> _Spec:
    needed = [*q1, *q2, label, *(c for c in (qid1, qid2) if c)]
    _require(path, list(table.columns), needed)
    return _Spec(q1, q2, label, qid1, qid2)


def _require(path: Path, found: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in found]
    if missing:
        raise InputError(
            f"missing column {missing[0]!r}; the file has columns {found}", file=path, column=missing[0]
        )


def _generic_spec(path: Path, found: list[str], overrides: dict[str, str | None]) -> _Spec:
    """Resolve the text, label and qid columns of a generic file (explicit names win over detection)."""
    lower = {c.lower(): c for c in found}

    def pick_pair(options: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
        for a, b in options:
            if a in lower and b in lower:
                return lower[a], lower[b]
        return None

    q1, q2 = overrides["question1"], overrides["question2"]
    if q1 is None or q2 is None:
        detected = pick_pair(TEXT_COLUMN_PAIRS)
        if detected is None:
            expected = ", ".join("/".join(p) for p in TEXT_COLUMN_PAIRS)
            raise InputError(
                f"cannot find the two question columns (tried {expected}); the file has columns {found}; "
                "name them with question1=/question2= (CLI --question1/--question2)",
                file=path,
                column=q1 or "question1",
            )
        q1, q2 = q1 or detected[0], q2 or detected[1]
    lab = overrides["label"]
    if lab is None:
        lab = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
        if lab is None:
            raise InputError(
                f"cannot find a 0/1 label column (tried {', '.join(LABEL_COLUMNS)}); the file has columns "
                f"{found}; name it with label= (CLI --label)",
                file=path,
                column="label",
            )
    id1, id2 = overrides["qid1"], overrides["qid2"]
    if (id1 is None) != (id2 is None):
        raise InputError("give both qid1= and qid2= or neither", file=path, column=id1 or id2)
    if id1 is None:
        detected_ids = pick_pair(QID_COLUMN_PAIRS)
        if detected_ids is not None:
            id1, id2 = detected_ids
    _require(path, found, [q1, q2, lab, *(c for c in (id1, id2) if c)])
    return _Spec([q1], [q2], lab, id1, id2)


def _as_text(value: Any) -> str | None:
    """A question's text, or None when there is nothing a model could encode."""
    if is_blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bytes, bytearray)):
        return None
    return str(value).strip() or None


def _join_text(values: list[Any]) -> str | None:
    """Join subject and body (SemEval) into one question; a single column passes through."""
    if len(values) == 1:
        v = values[0]
        if type(v) is str:  # the common case, kept cheap: QQP has 800k question cells
            v = v.strip()
            return v or None
        return _as_text(v)
    parts = [t for t in (_as_text(v) for v in values) if t]
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        if part.startswith(out):  # bodies often repeat the subject
            out = part
            continue
        out = f"{out} {part}" if out[-1] in ".?!:;" else f"{out}. {part}"
    return out


_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def parse_label(value: Any) -> int | None:
    """0 or 1 from the ways files spell a binary label (``1``, ``"1"``, ``1.0``, ``True``); else None."""
    if type(value) is str:
        return _LABELS.get(value) if value in _LABELS else _LABELS.get(value.strip().lower())
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if value in (0, 1) else None
    if isinstance(value, (float, np.floating)):
        return int(value) if value in (0.0, 1.0) else None
    if isinstance(value, str):
        return _LABELS.get(value.strip().lower())
    return None


def _as_qid(value: Any) -> str | None:
    if type(value) is str:
        return value.strip() or None
    if is_blank(value):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # Parquet/JSON turn nullable integer ids into floats
    return str(value).strip()


class _RowChecker:
    """Checks one row of a table against a :class:`_Spec`: text present, label 0/1, not a self-pair.

    Normalised texts and their keys are cached: QQP repeats the same questions many times."""

    def __init__(self, table: Table, spec: _Spec) -> None:
        cols = table.columns
        self.spec = spec
        self.c_q1 = [cols[c] for c in spec.q1]
        self.c_q2 = [cols[c] for c in spec.q2]
        self.c_label = cols[spec.label]
        self.c_id1 = cols[spec.qid1] if spec.qid1 else None
        self.c_id2 = cols[spec.qid2] if spec.qid2 else None
        self.name_q1 = "+".join(spec.q1)
        self.name_q2 = "+".join(spec.q2)
        self._norms: dict[str, str] = {}
        self._keys: dict[str, str] = {}

    def norm(self, t: str) -> str:
        n = self._norms.get(t)
        if n is None:
            n = self._norms[t] = normalize(t)
        return n

    def key(self, t: str) -> str:
        k = self._keys.get(t)
        if k is None:
            k = self._keys[t] = normalized_key(self.norm(t))
        return k

    def check(self, i: int, row: int) -> tuple[list[RowIssue], tuple[Any, ...]]:
        """``(issues, (qid1, qid2, question1, question2, label))`` for the ``i``-th row (source ``row``)."""
        spec, name_q1, name_q2 = self.spec, self.name_q1, self.name_q2
        issues: list[RowIssue] = []
        raw1 = [c[i] for c in self.c_q1]
        raw2 = [c[i] for c in self.c_q2]
        t1, t2 = _join_text(raw1), _join_text(raw2)
        if t1 is None:
            issues.append(RowIssue(row, name_q1, "missing_text", show(raw1[0] if len(raw1) == 1 else raw1)))
        if t2 is None:
            issues.append(RowIssue(row, name_q2, "missing_text", show(raw2[0] if len(raw2) == 1 else raw2)))
        lab = parse_label(self.c_label[i])
        if lab is None:
            issues.append(RowIssue(row, spec.label, "bad_label", show(self.c_label[i])))
        # A blank qid falls back to the text key below, so the row is kept and still joins its component.
        id1 = _as_qid(self.c_id1[i]) if self.c_id1 is not None else None
        id2 = _as_qid(self.c_id2[i]) if self.c_id2 is not None else None
        if t1 is not None and t2 is not None:
            same_text = self.norm(t1) == self.norm(t2)
            id1 = id1 or self.key(t1)
            id2 = id2 or self.key(t2)
            if id1 == id2 and spec.qid2 is not None and not same_text:
                issues.append(RowIssue(row, spec.qid2, "self_pair", f"same qid {id1!r} on both sides"))
            elif same_text:
                issues.append(RowIssue(row, name_q2, "self_pair", f"same text as {name_q1}: {show(t2)}"))
        return issues, (id1, id2, t1, t2, lab)


def _build(
    path: Path | str, table: Table, spec: _Spec, *, fmt: str, strict: bool, sha: str | None
) -> PairData:
    """Validate every row into the canonical table; collect (or, strictly, raise) per-row issues."""
    checker = _RowChecker(table, spec)
    out: dict[str, list[Any]] = {c: [] for c in PAIR_COLUMNS}
    issues: list[RowIssue] = list(table.malformed)
    first_malformed = table.malformed[0].row if table.malformed else None
    for i, row in enumerate(table.rows):
        if strict and first_malformed is not None and first_malformed < row:
            break
        row_issues, values = checker.check(i, row)
        if row_issues:
            if strict:
                issues = row_issues
                break
            issues.extend(row_issues)
            continue
        for column, value in zip(("qid1", "qid2", "question1", "question2", "label"), values, strict=True):
            out[column].append(value)
        out["source_row"].append(row)
    if strict and issues:
        first = min(issues, key=lambda x: x.row)
        raise InputError(f"{first.kind}: {first.value}", file=path, row=first.row, column=first.column)
    issues.sort(key=lambda x: x.row)
    pairs = empty_pairs() if not out["label"] else pd.DataFrame(out)
    if len(pairs):
        pairs["label"] = pairs["label"].astype("int64")
        pairs["source_row"] = pairs["source_row"].astype("int64")
    data = PairData(pairs, issues, str(path), sha, table.n_input_rows, fmt)
    if issues:
        logger.info(  # callers print data.report(); a warning here would say it twice
            "%s: %d of %d rows excluded (%s)",
            path,
            len(data.rows_with_issues),
            table.n_input_rows,
            ", ".join(f"{k}={v}" for k, v in data.issue_counts().items()),
        )
    return data


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
    spec = _generic_spec(Path(source), found, overrides)
    columns = dataset.to_dict()
    n = len(columns[spec.label])
    if n and all(v == -1 for v in columns[spec.label]):
        raise DupqError(
            f"{source}: every label is -1 — this split has no labels (GLUE test); use train or dev"
        )
    table = Table({c: columns[c] for c in found}, list(range(1, n + 1)), [], n)
    sha = _content_sha256(columns, [*spec.q1, *spec.q2, spec.label])
    return _build(source, table, spec, fmt="hf", strict=strict, sha=sha)


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
