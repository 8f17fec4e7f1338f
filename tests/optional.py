"""What a test needs that a fresh clone may lack: the shared data sets, the optional extras.

A missing prerequisite skips the test with the reason — unless the variable that CI sets
(``.ci/run``: ``DUPQ_REQUIRE_SHARED=1``, ``DUPQ_REQUIRE_EXTRAS=1``) says it must be there, in which
case it fails: CI never turns "tested" into "skipped" without anyone noticing.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

TRUE = {"1", "true", "yes", "on"}


def required(variable: str) -> bool:
    """Whether ``$variable`` asks for the prerequisite to be present (``1``/``true``/``yes``/``on``)."""
    return os.environ.get(variable, "").strip().lower() in TRUE


def missing(reason: str, *, required_by: str, module_level: bool = False) -> None:
    """Skip with ``reason``; fail instead when ``$required_by`` is set. Never returns."""
    if required(required_by):
        pytest.fail(f"{reason} — and {required_by} is set, so this is a failure, not a skip", pytrace=False)
    pytest.skip(f"{reason} (set {required_by}=1 to make this a failure)", allow_module_level=module_level)


def import_extra(module: str, extra: str, *, module_level: bool = False) -> ModuleType:
    """``import module`` from the optional extra ``dupq[extra]``: skips when it is not installed,
    fails when ``DUPQ_REQUIRE_EXTRAS`` is set (CI installs every extra)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(
            f"{module} is not importable ({exc}); it comes with the optional extra dupq[{extra}]",
            required_by="DUPQ_REQUIRE_EXTRAS",
            module_level=module_level,
        )
        raise AssertionError("unreachable") from None
