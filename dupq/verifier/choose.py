"""Which verifier decides: the one rule behind ``verifier="auto"`` everywhere a decision is made.

The Matcher, ``dupq dedupe``, ``dupq score``, ``dupq match`` and ``dupq serve`` all take a verifier
argument and all resolve it here, so a user gets the same decision stage from every door:

* ``"auto"`` (the default) — the model directory's own verifier when it carries one (a ``verifier/``
  folder beside its ``dupq.json``, as ``dupq train --kind verifier --out MODEL/verifier`` makes);
  else, for the stock encoder, the verifier shipped inside dupq (``dupq/verifiers/default``, fit
  over that encoder's token vectors by ``make default-verifier``); else none, with a note: the
  shipped head reads the *stock* encoder's token vectors, and another encoder's would mislead it;
* ``None`` / ``"none"`` / ``--no-verifier`` — no verifier: the cosine decides;
* ``"default"`` — the shipped verifier; a directory — that verifier; a loaded one — itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dupq.card import ModelCard

if TYPE_CHECKING:
    from dupq.verifier.model import Verifier

logger = logging.getLogger(__name__)

AUTO = "auto"
#: A model directory's own verifier lives here.
OWN_VERIFIER_DIR = "verifier"


def own_verifier_dir(model_source: str | Path | None) -> Path | None:
    """``MODEL/verifier`` when it holds a verifier's model card, else ``None``."""
    if not model_source:
        return None
    path = Path(model_source) / OWN_VERIFIER_DIR
    card = ModelCard.read(path) if (path / "dupq.json").is_file() else None
    return path if card is not None and card.is_verifier else None


def is_stock_encoder(model_source: str | Path | None) -> bool:
    """Whether a model was loaded from the embedded all-MiniLM-L6-v2 (the shipped head's encoder)."""
    from dupq.encoder import default_model_path

    return model_source is not None and Path(model_source).resolve() == default_model_path().resolve()


def choose_verifier(verifier: Any, model_source: str | Path | None) -> Any:
    """What :func:`resolve_verifier` would load, without loading it: ``None``, a loaded verifier, or a
    directory / ``"default"`` (dedupe decides this before encoding and loads it only to verify)."""
    if verifier is None or (isinstance(verifier, str) and verifier.strip().lower() in ("none", "off")):
        return None
    if not isinstance(verifier, str) or verifier.strip().lower() != AUTO:
        return verifier
    own = own_verifier_dir(model_source)
    if own is not None:
        return own
    if is_stock_encoder(model_source):
        from dupq.verifier.model import DEFAULT_VERIFIER

        return DEFAULT_VERIFIER
    logger.info(
        "no verifier: %s carries none (MODEL/%s) and the shipped one reads only the stock encoder's "
        "token vectors; the cosine decides",
        model_source,
        OWN_VERIFIER_DIR,
    )
    return None


def resolve_verifier(
    verifier: Any,
    model_source: str | Path | None,
    *,
    device: str | None = None,
    backend: str = "torch",
    encoder: Any = None,
) -> Verifier | None:
    """The verifier that decides (see the module docstring), loaded; ``None`` for the cosine alone.

    ``encoder``: the bi-encoder already loaded by the caller; a verifier over the same weights reuses
    it instead of loading a second copy.
    """
    verifier = choose_verifier(verifier, model_source)
    if verifier is None or not isinstance(verifier, (str, Path)):
        return verifier  # none, or a loaded verifier of either kind
    from dupq.verifier.model import Verifier

    return Verifier.load(verifier, device=device, backend=backend, encoder=encoder)


def describe(verifier: Any) -> str:
    """A short name of the deciding stage for summaries: ``cosine`` or ``verifier <where>``."""
    if verifier is None:
        return "cosine"
    from dupq.verifier.model import default_verifier_dir

    src = getattr(verifier, "source", None)
    if src and Path(src).resolve() == default_verifier_dir():
        return "verifier (shipped default)"
    return f"verifier ({src or 'in memory'})"
