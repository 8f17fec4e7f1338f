"""Shared fixtures: offline environment, the tiny model, the default model, the shared data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite encodes on torch unless a test says otherwise: exact figures (thresholds on crafted models)
# must not move with int8 rounding, and an ONNX export per throwaway model would cost minutes. The
# ``default`` backend itself (onnx-int8 on a CPU, torch as the fallback) has its own tests, which
# unset this (tests/test_defaults.py).
os.environ.setdefault("DUPQ_BACKEND", "torch")

from tests.optional import missing  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: ``$DUPQ_SHARED_DATA`` when set (as for :func:`dupq.data.shared_data_dir`), else ``../shared/data``.
SHARED_DATA = Path(os.environ.get("DUPQ_SHARED_DATA") or REPO.parent / "shared" / "data")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers directory holding a tiny random BERT (built once per session)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_hf_dir(tiny_model_dir: Path) -> Path:
    """The same tiny BERT as a plain Hugging Face directory (no modules.json)."""
    return tiny_model_dir.parent / (tiny_model_dir.name + "-hf")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """The tiny model loaded through dupq's own loader."""
    from dupq.encoder import load_encoder

    return load_encoder(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def default_model():
    """The embedded all-MiniLM-L6-v2 (offline); for tests about real matching quality."""
    from dupq.encoder import load_encoder

    return load_encoder(None, device="cpu")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (read-only real pair sets).

    Absent on a fresh clone: the tests that need it skip, saying why. ``.ci/run`` sets
    ``DUPQ_REQUIRE_SHARED=1``, which turns the absence into a failure, so CI never skips them silently.
    """
    if not SHARED_DATA.is_dir():
        missing(
            f"shared data not found at {SHARED_DATA} (the real pair sets are not shipped; lay them "
            "beside the checkout as ../shared/data or set DUPQ_SHARED_DATA)",
            required_by="DUPQ_REQUIRE_SHARED",
        )
    return SHARED_DATA
