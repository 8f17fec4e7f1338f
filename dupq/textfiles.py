"""Text files as dupq reads them: decompressed by suffix, and decoded under one encoding rule.

Split from :mod:`dupq.tables` (the table reader) so that the rules stand on their own:

* **compression** (``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``): :func:`open_bytes` gives the
  decompressed bytes, and everything else (encoding, delimiter, header, rows) is judged on them —
  never on the compressed bytes, where a delimiter guess finds nothing and a header check is blind;
* **encoding** (:func:`detect_encoding`): a byte-order mark wins (UTF-8, UTF-32, UTF-16); else UTF-8
  when the whole file decodes; else cp1252 / latin-1 (with a warning) *only* when the file looks like
  one. A file that holds UTF-8 characters too, or whose non-ASCII bytes come in runs (Shift-JIS, GBK,
  EUC), is refused with the line and byte offset: any single encoding would turn part of it into
  mojibake that every later step reports as ``ok``. ``--encoding`` overrides the guess.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from pathlib import Path
from typing import IO

from dupq.errors import InputError

logger = logging.getLogger(__name__)

_COMPRESSED = {".gz", ".bz2", ".zip", ".xz", ".zst"}
# UTF-32 before UTF-16: the UTF-32-LE mark FF FE 00 00 starts with the UTF-16-LE one, FF FE.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Magic numbers of binary files someone may hand over under a .csv name.
_BINARY_MAGIC = (b"PAR1", b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"SQLite format 3", b"\x89PNG", b"%PDF")
# A valid multi-byte UTF-8 sequence: in a file that is not UTF-8 as a whole, the sign of a mixed file.
_UTF8_SEQ = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_HIGH_RUN = re.compile(rb"[\x80-\xff]{2,}")
_HIGH = re.compile(rb"[\x80-\xff]")


def compression(path: str | Path) -> str | None:
    """The compression a file's last suffix names (``gz``, ``bz2``, ``xz``, ``zip``, ``zst``) or ``None``."""
    suffix = Path(path).suffix.lower()
    return suffix[1:] if suffix in _COMPRESSED else None


def open_bytes(path: str | Path) -> IO[bytes]:
    """The file's bytes, decompressed by suffix: one place, so that the encoding, the delimiter, the
    header and the rows are all judged on the same (decompressed) text."""
    path = Path(path)
    kind = compression(path)
    try:
        if kind == "gz":
            import gzip

            return gzip.open(path, "rb")
        if kind == "bz2":
            import bz2

            return bz2.open(path, "rb")
        if kind == "xz":
            import lzma

            return lzma.open(path, "rb")
        if kind == "zip":
            import zipfile

            zf = zipfile.ZipFile(path)
            members = [m for m in zf.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
            if len(members) != 1:
                zf.close()
                raise InputError(f"a zip archive must hold exactly one file, found {members}", file=path)
            return zf.open(members[0])
        if kind == "zst":
            try:
                import zstandard
            except ImportError as exc:
                raise InputError("reading .zst needs the zstandard package", file=path) from exc
            return zstandard.open(path, "rb")
        return open(path, "rb")  # noqa: SIM115 -- the caller closes it
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from exc
    except Exception as exc:  # a corrupt archive: zipfile.BadZipFile …
        raise InputError(f"cannot decompress: {exc}", file=path) from exc


def open_text(path: str | Path, encoding: str, errors: str = "strict") -> IO[str]:
    """:func:`open_bytes` decoded (``newline=""``: the csv module sees line breaks inside quotes)."""
    return io.TextIOWrapper(open_bytes(path), encoding=encoding, errors=errors, newline="")


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``head`` announces, if any."""
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), None)


def decode_error(path: Path, data: bytes, exc: UnicodeDecodeError, encoding: str | None) -> InputError:
    """The one message for undecodable text: the line and bytes, and what to do."""
    line = data[: exc.start].count(b"\n") + 1
    bad = data[exc.start : exc.start + 4]
    return InputError(
        f"not valid {encoding or 'UTF-8'} text at line {line} (byte offset {exc.start}: {bad!r}); "
        "re-save the file as UTF-8 or pass its encoding (encoding='latin-1', CLI --encoding)",
        file=path,
    )


def detect_encoding(path: Path) -> str:
    """The text encoding of ``path`` (rules in the module docstring); binary files are refused.

    The check streams the (decompressed) file once (a few seconds per GB) so that a bad byte in row
    900,000 does not abort a run after hours of work.
    """
    try:
        with open_bytes(path) as fh:
            head = fh.read(8192)
            bom = bom_encoding(head)
            if bom is not None and bom != "utf-8-sig":
                return bom
            if head.startswith(_BINARY_MAGIC) or head.count(b"\x00") > len(head) // 4:
                raise InputError("looks like a binary file, not CSV/TSV text", file=path)
            bad = _first_non_utf8(head, fh)
    except InputError:
        raise
    except (OSError, EOFError) as exc:  # a truncated or corrupt archive
        raise InputError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", file=path) from exc
    if bad is None:
        return "utf-8-sig"  # also reads plain UTF-8; strips a BOM
    offset, line, sample = bad
    where = f"line {line} (byte offset {offset}: {sample!r})"
    utf8_bytes, high, in_runs = _byte_stats(path)
    if utf8_bytes * 2 > high:
        raise InputError(
            f"not valid UTF-8 at {where}, although other rows are UTF-8: one encoding cannot read both "
            "without changing text; fix that row, or pass --encoding if the whole file is in another one",
            file=path,
            row=max(line - 1, 1),
        )
    if high and in_runs * 2 > high:
        raise InputError(
            f"not UTF-8 (first at {where}), and its non-ASCII bytes come in runs, as in Shift-JIS, "
            "GBK or EUC: pass --encoding (e.g. --encoding shift_jis), or re-save the file as UTF-8",
            file=path,
            row=max(line - 1, 1),
        )
    if utf8_bytes:  # a few UTF-8 characters among legacy bytes: either reading changes some text
        raise InputError(
            f"not valid UTF-8 at {where}, yet it holds UTF-8 characters elsewhere: one encoding cannot "
            "read both without changing text; re-save the file in one encoding or pass --encoding",
            file=path,
            row=max(line - 1, 1),
        )
    logger.warning("%s is not UTF-8 (first at %s); reading it as cp1252/latin-1", path, where)
    try:
        with open_bytes(path) as fh:
            while block := fh.read(1 << 20):
                block.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _first_non_utf8(head: bytes, fh: IO[bytes]) -> tuple[int, int, bytes] | None:
    """``(byte offset, line, bytes)`` of the first byte that is not UTF-8, or ``None``; reads ``fh`` on
    after ``head``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0  # file offset of ``block`` and line breaks before it
    block = head
    while True:
        pending = decoder.getstate()[0]
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            data = pending + block
            where = offset - len(pending) + exc.start
            return where, lines + data[: exc.start].count(b"\n") + 1, data[exc.start : exc.start + 4]
        if not block:
            return None
        offset += len(block)
        lines += block.count(b"\n")
        block = fh.read(1 << 20)


def _byte_stats(path: Path) -> tuple[int, int, int]:
    """``(bytes in valid multi-byte UTF-8 sequences, high bytes, high bytes in runs of two or more)``."""
    seqs = high = in_runs = 0
    with open_bytes(path) as fh:
        while block := fh.read(1 << 20):
            seqs += sum(len(m) for m in _UTF8_SEQ.findall(block))
            high += len(_HIGH.findall(block))
            in_runs += sum(len(m) for m in _HIGH_RUN.findall(block))
    return seqs, high, in_runs
