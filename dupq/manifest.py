"""The Matcher store's files on disk: the manifest (read with its field types checked), the checks of
the files it lists, and the *generation* that tells one save of a store from another (so a save never
overwrites a store another process changed since it was loaded: :class:`~dupq.errors.StoreConflictError`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dupq.errors import StoreConflictError, StoreError
from dupq.io import sha256_file

STORE_FORMAT = "dupq-matcher"
STORE_FORMAT_VERSION = 1
INDEX_FILE = "index.dupqidx"
QUESTIONS_FILE = "questions.parquet"
MANIFEST_FILE = "manifest.json"


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise StoreError(f"{directory}: no such store directory")
    if not path.exists():
        raise StoreError(
            f"{directory}: no {MANIFEST_FILE} (not a Matcher store, or an interrupted first save)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: unreadable manifest: {exc}") from exc
    if manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{path}: not a {STORE_FORMAT} manifest")
    if manifest.get("format_version") != STORE_FORMAT_VERSION:
        raise StoreError(f"{path}: unsupported store format version {manifest.get('format_version')}")
    missing = {"model_fingerprint", "dim", "count", "threshold", "files"} - set(manifest)
    if missing:
        raise StoreError(f"{path}: manifest lacks {sorted(missing)}")
    # Types, not just presence: a hand-edited "dim": "384" would otherwise fail later as the baffling
    # "dimension 384 != encoder's 384".
    for key, minimum in (("dim", 1), ("count", 0), ("next_id", 0)):
        value = manifest.get(key, minimum)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise StoreError(
                f"{path}: manifest field {key!r} is {value!r} ({type(value).__name__}); "
                f"expected an integer >= {minimum}"
            )
    if not isinstance(manifest["model_fingerprint"], str):
        raise StoreError(f"{path}: manifest field 'model_fingerprint' is not a string")
    if not isinstance(manifest["files"], dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
        for v in manifest["files"].values()
    ):
        raise StoreError(f"{path}: manifest field 'files' is not {{name: {{'sha256': str, 'bytes': int}}}}")
    threshold = manifest["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise StoreError(f"{path}: manifest field 'threshold' is {threshold!r}; expected a number")
    return manifest


def check_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Every data file the manifest lists is there, with its recorded size and sha256."""
    for name in (INDEX_FILE, QUESTIONS_FILE):
        path = directory / name
        want = manifest["files"].get(name)
        if not path.exists() or want is None:
            raise StoreError(f"{directory}: missing {name}")
        size = path.stat().st_size
        if size != want["bytes"]:
            raise StoreError(f"{path}: {size} bytes, manifest says {want['bytes']} (truncated or replaced)")
        if sha256_file(path) != want["sha256"]:
            raise StoreError(f"{path}: checksum does not match the manifest (corrupt or edited)")


def generation(directory: Path) -> str | None:
    """What identifies one save of the store at ``directory``: the sha256 of its manifest (which holds a
    fresh ``generation`` id and every file's checksum), or ``None`` where no store is."""
    try:
        return hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{directory / MANIFEST_FILE}: unreadable: {exc.strerror}") from exc


def check_unchanged(directory: Path, known: str | None, *, overwrite: bool) -> None:
    """Refuse (:class:`StoreConflictError`) to save over a store at ``directory`` other than generation
    ``known`` (the one this Matcher loaded or last saved there; ``None``: none), unless ``overwrite``."""
    on_disk = generation(directory)
    if on_disk is None or overwrite or on_disk == known:
        return
    raise StoreConflictError(
        f"{directory} "
        + (
            "changed on disk since this Matcher loaded or last saved it (another process "
            "or Matcher saved it meanwhile)"
            if known is not None
            else "already holds a store this Matcher did not load"
        )
        + ": refusing to overwrite it. Load it again and re-apply the changes, or save "
        "with overwrite=True to replace it."
    )
