"""The verifier: a second-stage duplicate decision on the bi-encoder's candidate pairs.

The bi-encoder retrieves (one vector per question, FAISS); the verifier decides. Two kinds, loaded
alike by :meth:`Verifier.load` (``dupq.json`` says which):

* late interaction (the recipe's choice, by dev AP) — from the same encoder's token vectors, split
  along its pipeline: :mod:`.tokens` (one encoder pass per question, torch or int8 ONNX) →
  :mod:`.features` (pure alignment and lexical features) → :mod:`.head` (the learned head, stored as
  plain arrays) → :mod:`.model` (:class:`Verifier`) and :mod:`.train`;
* cross-encoder — both questions in one transformer pass: :mod:`.cross` (:class:`CrossVerifier`).

:mod:`.base` holds what both share (scores, checks).
"""

from dupq.verifier.base import VerifierScores
from dupq.verifier.cross import CrossVerifier, train_cross_verifier
from dupq.verifier.model import Verifier
from dupq.verifier.train import train_verifier

__all__ = ["CrossVerifier", "Verifier", "VerifierScores", "train_cross_verifier", "train_verifier"]
