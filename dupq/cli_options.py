"""Command-line options built from their one declaration (:mod:`dupq.options`).

Every command that decides (``dedupe``, ``score``, ``match``, ``serve``) takes the same verifier and
backend options, so a user learns them once and their defaults cannot drift apart. A command whose
options are a config's fields (``dupq dedupe``: :class:`~dupq.dedupe.config.DedupeConfig`) gets them
from :func:`option_parameters`, so its flags, defaults and help are the config's own.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable

import typer

from dupq.options import BACKEND, NO_VERIFIER, VERIFIER, Flag


def typer_option(spec: Flag) -> typer.models.OptionInfo:
    """The ``typer.Option`` of a declared option (``...``: required)."""
    default = spec.cli_default()
    return typer.Option(
        ... if default is dataclasses.MISSING else default, *spec.flags, help=spec.help, show_default=True
    )


def option_parameters(specs: Iterable[tuple[str, Flag]]) -> list[inspect.Parameter]:
    """One keyword parameter per declared command-line option (``(field name, Flag)``), typed and
    defaulted for typer; the parameter is named ``spec.param`` where given, else the field."""
    return [
        inspect.Parameter(
            spec.param or name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer_option(spec),
            annotation=spec.cli_type(),
        )
        for name, spec in specs
        if spec.on_cli
    ]


VERIFIER_OPTION = typer_option(VERIFIER)
NO_VERIFIER_OPTION = typer_option(NO_VERIFIER)
BACKEND_OPTION = typer_option(BACKEND)
