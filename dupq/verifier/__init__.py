"""The verifier: a second-stage duplicate decision on the bi-encoder's candidate pairs.

The bi-encoder retrieves (one vector per question, FAISS); the verifier decides, from the same
encoder's token vectors (late interaction). Split along its pipeline: :mod:`.tokens` (one encoder pass
per question) → :mod:`.features` (pure alignment and lexical features) → :mod:`.head` (the learned
head, stored as plain arrays) → :mod:`.model` (:class:`Verifier`) and :mod:`.train`.
"""

from dupq.verifier.model import Verifier, VerifierScores
from dupq.verifier.train import train_verifier

__all__ = ["Verifier", "VerifierScores", "train_verifier"]
