"""dupq — semantic duplicate-question detection with Siamese text encoders and FAISS.

The public API lives here; modules follow the pipeline:
data → encoder/embed → train → evaluate → index → matcher / dedupe → cli.
"""

from __future__ import annotations

from dupq.data import load_hf_pairs, load_pairs, split_pairs
from dupq.datamodels import PairData, RowIssue, Splits
from dupq.embed import Embedder
from dupq.encoder import DEFAULT_MODEL, load_encoder
from dupq.errors import DupqError, EncoderLoadError, InputError, StoreError

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "DupqError",
    "Embedder",
    "EncoderLoadError",
    "InputError",
    "PairData",
    "RowIssue",
    "Splits",
    "StoreError",
    "__version__",
    "load_encoder",
    "load_hf_pairs",
    "load_pairs",
    "split_pairs",
]
