"""Siamese training objectives, selectable by name, each with the data layout it needs.

All losses train *one shared encoder* on both questions of a pair (the Siamese set-up); they differ
in what they push apart and which examples they use:

========================  ===================================================================
name                      what it does (dupq label convention: ``label = is_duplicate``, 1 = same)
========================  ===================================================================
``contrastive``           Margin loss over all labelled pairs. Hadsell et al. write it
                          ``L = (1-Y)·½·D² + Y·½·max(0, m-D)²`` with **Y = 1 for dissimilar**;
                          dupq (like sentence-transformers) feeds ``label = is_duplicate``, i.e.
                          ``Y = 1 - label``: duplicates are pulled together, non-duplicates pushed
                          beyond the margin ``m``. Distance: euclidean | cosine | manhattan.
``online-contrastive``    The same, but only on the hard pairs of each batch (positives farther
                          than the closest negative, negatives closer than the farthest
                          positive). Usually better than plain contrastive on QQP.
``cosine``                Regresses cos(u, v) onto the label (MSE). Simple, calibrates well.
``mnrl``                  MultipleNegativesRankingLoss on duplicate pairs only: every other
                          question in the batch is a negative. Strongest for retrieval; needs a
                          no-duplicates batch sampler so a batch never holds a true positive as
                          a negative.
``triplet``               (anchor, duplicate, non-duplicate) triplets mined from the pairs
                          (a labelled non-duplicate partner of the anchor when there is one, the
                          hardest kind of negative; else a question from another component).
``mnrl+online-contrastive``  Multi-task: MNRL on the duplicates and online-contrastive on all
                          pairs, alternated round-robin — ranking quality and a sharp boundary.
========================  ===================================================================
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from dupq.errors import InputError

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

LOSSES = ("contrastive", "online-contrastive", "cosine", "mnrl", "triplet", "mnrl+online-contrastive")
DISTANCES = ("cosine", "euclidean", "manhattan")


@dataclass(frozen=True)
class LossSpec:
    """A loss by name with its hyper-parameters (stored in ``dupq.json`` for provenance)."""

    name: str = "mnrl"
    margin: float = 0.5
    distance: str = "cosine"
    mnrl_scale: float = 20.0
    triplet_margin: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise InputError(f"unknown loss {self.name!r}; choose one of {', '.join(LOSSES)}")
        if self.distance not in DISTANCES:
            raise InputError(f"unknown distance {self.distance!r}; choose one of {', '.join(DISTANCES)}")

    @property
    def needs_no_duplicates_sampler(self) -> bool:
        """In-batch-negative losses must not see the same question twice in a batch."""
        return self.name in {"mnrl", "mnrl+online-contrastive"}


def build_datasets(pairs: pd.DataFrame, spec: LossSpec, seed: int = 42) -> Dataset | dict[str, Dataset]:
    """Turn canonical pairs into the dataset layout ``spec`` needs (column order matters to the losses)."""
    from datasets import Dataset

    if spec.name == "mnrl":
        return _duplicate_pairs(pairs)
    if spec.name == "triplet":
        return _triplets(pairs, seed)
    labelled = Dataset.from_dict(
        {
            "question1": pairs["question1"].tolist(),
            "question2": pairs["question2"].tolist(),
            "label": [float(x) if spec.name == "cosine" else int(x) for x in pairs["label"]],
        }
    )
    if spec.name == "mnrl+online-contrastive":
        return {"mnrl": _duplicate_pairs(pairs), "online_contrastive": labelled}
    return labelled


def build_loss(model: SentenceTransformer, spec: LossSpec) -> torch.nn.Module | dict[str, torch.nn.Module]:
    """Instantiate the sentence-transformers loss (or the dict of losses for multi-task)."""
    from sentence_transformers import losses

    metric = {
        "cosine": losses.SiameseDistanceMetric.COSINE_DISTANCE,
        "euclidean": losses.SiameseDistanceMetric.EUCLIDEAN,
        "manhattan": losses.SiameseDistanceMetric.MANHATTAN,
    }[spec.distance]
    if spec.name == "contrastive":
        return losses.ContrastiveLoss(model, distance_metric=metric, margin=spec.margin)
    if spec.name == "online-contrastive":
        return losses.OnlineContrastiveLoss(model, distance_metric=metric, margin=spec.margin)
    if spec.name == "cosine":
        return losses.CosineSimilarityLoss(model)
    if spec.name == "mnrl":
        return losses.MultipleNegativesRankingLoss(model, scale=spec.mnrl_scale)
    if spec.name == "triplet":
        return losses.TripletLoss(
            model,
            distance_metric=losses.TripletDistanceMetric.COSINE,
            triplet_margin=spec.triplet_margin,
        )
    return {
        "mnrl": losses.MultipleNegativesRankingLoss(model, scale=spec.mnrl_scale),
        "online_contrastive": losses.OnlineContrastiveLoss(model, distance_metric=metric, margin=spec.margin),
    }


def _duplicate_pairs(pairs: pd.DataFrame) -> Dataset:
    from datasets import Dataset

    dup = pairs[pairs["label"] == 1]
    if dup.empty:
        raise InputError("MNRL needs duplicate pairs (label 1); the data has none")
    return Dataset.from_dict({"anchor": dup["question1"].tolist(), "positive": dup["question2"].tolist()})


def _triplets(pairs: pd.DataFrame, seed: int) -> Dataset:
    """(anchor, positive, negative): labelled non-duplicate partners first, random questions otherwise."""
    from datasets import Dataset

    rng = random.Random(seed)
    negatives: dict[str, list[str]] = defaultdict(list)
    for q1, q2, lab in zip(pairs["question1"], pairs["question2"], pairs["label"], strict=True):
        if lab == 0:
            negatives[q1].append(q2)
            negatives[q2].append(q1)
    positives: dict[str, set[str]] = defaultdict(set)
    for q1, q2, lab in zip(pairs["question1"], pairs["question2"], pairs["label"], strict=True):
        if lab == 1:
            positives[q1].add(q2)
            positives[q2].add(q1)
    pool = sorted(set(pairs["question1"]) | set(pairs["question2"]))
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for q1, q2, lab in zip(pairs["question1"], pairs["question2"], pairs["label"], strict=True):
        if lab != 1:
            continue
        cands = negatives.get(q1) or negatives.get(q2)
        if cands:
            neg = rng.choice(cands)
        else:
            neg = rng.choice(pool)
            for _ in range(10):
                if neg not in positives[q1] and neg != q1:
                    break
                neg = rng.choice(pool)
        rows["anchor"].append(q1)
        rows["positive"].append(q2)
        rows["negative"].append(neg)
    if not rows["anchor"]:
        raise InputError("triplet loss needs duplicate pairs (label 1); the data has none")
    return Dataset.from_dict(rows)
