"""Command-line options that several commands share, declared once (name, default and help).

Every command that decides (``dedupe``, ``score``, ``match``, ``serve``) takes the same verifier and
backend options, so a user learns them once and their defaults cannot drift apart.
"""

from __future__ import annotations

import typer

VERIFIER_OPTION = typer.Option(
    "auto",
    "--verifier",
    help="The deciding stage: auto (the model's own verifier, else the one shipped for the stock "
    "encoder), default (the shipped one), or a verifier directory.",
    show_default=True,
)
NO_VERIFIER_OPTION = typer.Option(
    False, "--no-verifier", help="No verifier: the cosine decides alone.", show_default=True
)
BACKEND_OPTION = typer.Option(
    "default",
    "--backend",
    help="Encoding backend: default (onnx-int8 on a CPU where installed, else torch), auto, torch, onnx, "
    "onnx-int8, openvino or openvino-int8.",
    show_default=True,
)
