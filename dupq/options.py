"""Option declarations that both the library and the command line read: a default, flags and a help.

An option that a function takes and a command exposes used to be written twice — a keyword default in
the function, a ``typer.Option`` in the command — and the two drifted (issue 26). Here an option is
declared once, as a dataclass field whose metadata holds its :class:`Flag`; the function's defaults,
the config and the command's options are all read from that field. The module is typer-free, so the
library never imports the CLI to learn its own defaults; :mod:`dupq.cli_options` builds the
``typer.Option`` objects from these declarations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: The metadata key of a field's :class:`Flag`.
KEY = "option"


@dataclass(frozen=True)
class Flag:
    """How an option shows on the command line (``flags`` empty: an API-only option).

    ``default`` is the command's default (:data:`dataclasses.MISSING`: required); it equals the
    field's default, except where ``required`` or ``negate`` say otherwise. ``required``: the command
    requires it though the function has a default (``--out``: a library call may return the table
    instead). ``negate``: a flag that switches the option off (``--quiet`` sets ``show_progress`` to
    False). ``param``: the command's parameter name where it differs from the field's (``quiet``).
    ``value_type``: the command's value type where the default does not tell it (``None`` defaults).
    """

    default: Any
    flags: tuple[str, ...]
    help: str
    required: bool = False
    negate: bool = False
    param: str | None = None
    value_type: type | None = None

    @property
    def on_cli(self) -> bool:
        return bool(self.flags)

    def cli_default(self) -> Any:
        """The command's default (``MISSING``: required)."""
        if self.required:
            return dataclasses.MISSING
        return (not self.default) if self.negate else self.default

    def cli_type(self) -> Any:
        """The command's value type: ``value_type``, else the default's, else ``str``; ``| None`` when the
        command's default is ``None``."""
        default = self.cli_default()
        kind = self.value_type or (
            type(default) if default is not None and default is not dataclasses.MISSING else str
        )
        return kind | None if default is None else kind

    def from_cli(self, value: Any) -> Any:
        """The option's value from the command's."""
        return (not value) if self.negate else value


def option(
    default: Any = dataclasses.MISSING,
    *flags: str,
    help: str,
    required: bool = False,
    negate: bool = False,
    param: str | None = None,
    value_type: type | None = None,
) -> Any:
    """A dataclass field declaring one option (``default`` omitted: required everywhere)."""
    spec = Flag(default, flags, help, required=required, negate=negate, param=param, value_type=value_type)
    return shared(spec)


def shared(spec: Flag) -> Any:
    """A dataclass field for an option whose :class:`Flag` is declared once for several commands."""
    if spec.default is dataclasses.MISSING:
        return dataclasses.field(metadata={KEY: spec})
    return dataclasses.field(default=spec.default, metadata={KEY: spec})


def declared(cls: type) -> Iterator[tuple[str, Flag]]:
    """The options a dataclass declares, in field order: ``(name, Flag)``."""
    for f in dataclasses.fields(cls):
        if KEY in f.metadata:
            yield f.name, f.metadata[KEY]


# --- options several commands share (``dedupe``, ``score``, ``match``, ``serve``) -------------------
# A user learns them once, and their defaults cannot drift apart between commands.

VERIFIER = Flag(
    "auto",
    ("--verifier",),
    "The deciding stage: auto (the model's own verifier, else the one shipped for the stock "
    "encoder), default (the shipped one), or a verifier directory.",
)
NO_VERIFIER = Flag(False, ("--no-verifier",), "No verifier: the cosine decides alone.")
BACKEND = Flag(
    "default",
    ("--backend",),
    "Encoding backend: default (onnx-int8 on a CPU where installed, else torch), auto, torch, onnx, "
    "onnx-int8, openvino or openvino-int8.",
)
