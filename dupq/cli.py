"""The ``dupq`` command line: a thin shell over the library (each command calls one library function).

Commands are grouped by pipeline stage. Heavy imports happen inside the commands so that
``dupq --help`` stays fast.
"""

from __future__ import annotations

import logging
import os

import typer

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="dupq",
    help="Semantic duplicate-question detection: train, evaluate, index, match, dedupe, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(exc: Exception) -> None:
    """Print a dupq error as one clear line and exit 2 (no traceback for user errors)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")


@app.command()
def version() -> None:
    """Print the dupq version."""
    from dupq import __version__

    typer.echo(__version__)


# --- data / train / evaluate (core) ------------------------------------------------------------

# --- index / match / serve (Matcher) -----------------------------------------------------------

# --- dedupe ------------------------------------------------------------------------------------

# --- encoding backends -------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
