"""dupq — semantic duplicate-question detection with Siamese text encoders and FAISS.

The public API lives here; modules follow the pipeline:
data → encoder/embed → train → evaluate → index → matcher / dedupe → cli.
"""

from __future__ import annotations

from dupq import evaluate  # a callable module: dupq.evaluate(model, pairs) runs the evaluation
from dupq.backends import BACKENDS, available_backends, export_onnx
from dupq.data import load_hf_pairs, load_pairs, split_pairs
from dupq.datamodels import EvaluationReport, Match, PairData, QueryMatches, RowIssue, Splits
from dupq.dedupe import DedupeResult, DedupeSummary, deduplicate
from dupq.embed import Embedder
from dupq.encoder import DEFAULT_MODEL, DEFAULT_THRESHOLD, load_encoder
from dupq.errors import DupqError, EncoderLoadError, InputError, StoreError
from dupq.evaluate import Calibration, calibrate
from dupq.index import VectorIndex
from dupq.matcher import Matcher
from dupq.training import TrainConfig, TrainResult, train, train_model

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLD",
    "TrainConfig",
    "TrainResult",
    "train",
    "train_model",
    "BACKENDS",
    "available_backends",
    "export_onnx",
    "VectorIndex",
    "QueryMatches",
    "Matcher",
    "Match",
    "DEFAULT_MODEL",
    "Calibration",
    "DedupeResult",
    "DedupeSummary",
    "DupqError",
    "Embedder",
    "EncoderLoadError",
    "EvaluationReport",
    "InputError",
    "PairData",
    "RowIssue",
    "Splits",
    "StoreError",
    "__version__",
    "calibrate",
    "deduplicate",
    "evaluate",
    "load_encoder",
    "load_hf_pairs",
    "load_pairs",
    "split_pairs",
]
