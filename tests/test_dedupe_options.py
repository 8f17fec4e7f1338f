"""Each dedupe option is declared once (issue 26): a field of a group in :mod:`dupq.dedupe.config`,
from which ``DedupeConfig``, ``deduplicate()``'s keyword arguments and ``dupq dedupe``'s options all
come — so a default or a help text changed there changes everywhere, and cannot drift."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import typer
from typer.main import get_command

from dupq.cli import app
from dupq.cli_dedupe import CLI_OPTIONS, HELP_ORDER
from dupq.cli_dedupe import dedupe as dedupe_command
from dupq.dedupe import DedupeConfig, deduplicate
from dupq.dedupe.config import GROUPS
from dupq.dedupe.join import JOIN_RECALL
from dupq.options import KEY, NO_VERIFIER, declared


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(DedupeConfig) if f.init}


def test_every_option_belongs_to_one_group_and_is_declared():
    names = [f.name for g in GROUPS for f in dataclasses.fields(g)]
    assert len(names) == len(set(names))  # no option in two groups
    assert sorted(names) == sorted(_fields())  # DedupeConfig is exactly their union
    assert all(KEY in f.metadata and f.metadata[KEY].help for f in _fields().values())


def test_deduplicate_signature_is_the_declaration():
    params = inspect.signature(deduplicate).parameters
    assert list(params)[0] == "data"
    fields = _fields()
    assert list(params)[1:] == list(fields)
    for name, f in fields.items():
        p = params[name]
        assert p.kind is inspect.Parameter.KEYWORD_ONLY
        want = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == want, name
        assert f.metadata[KEY].default == f.default, name  # the Flag and the field agree


def test_deduplicate_names_a_wrong_keyword():
    with pytest.raises(TypeError, match="deduplicate\\(\\).*text_colum"):
        deduplicate("x.csv", text_column="q", text_colum="q")
    with pytest.raises(TypeError, match="deduplicate\\(\\).*text_column"):
        deduplicate("x.csv")


def test_cli_options_come_from_the_declaration():
    params = inspect.signature(dedupe_command).parameters
    assert sorted(HELP_ORDER) == sorted(p for p in params if p != "input")  # each listed, once
    for name, spec in [*CLI_OPTIONS, ("no_verifier", NO_VERIFIER)]:
        info = params[spec.param or name].default
        assert isinstance(info, typer.models.OptionInfo)
        assert info.help == spec.help and tuple(info.param_decls) == spec.flags, name
        assert info.default == (
            ... if spec.required or spec.default is dataclasses.MISSING else spec.cli_default()
        )
    # the API-only options have no flag; every other field is an option of the command
    api_only = {name for name, spec in declared(DedupeConfig) if not spec.on_cli}
    assert api_only == {"chunk_size", "dtype", "dropped_out"}
    assert {name for name, _ in CLI_OPTIONS} == set(_fields()) - api_only


def test_click_sees_the_declared_defaults_and_help():
    command = get_command(app).commands["dedupe"]
    by_name = {p.name: p for p in command.params}
    for name, spec in CLI_OPTIONS:
        p = by_name[spec.param or name]
        assert p.help == spec.help
        assert set(p.opts) == set(spec.flags)
        if not spec.required and spec.default is not dataclasses.MISSING:
            assert p.default == spec.cli_default(), name
    assert by_name["out"].required and by_name["text_column"].required
    assert by_name["quiet"].default is False and _fields()["show_progress"].default is True


def test_join_recall_default_is_declared_once():
    default = inspect.signature(dedupe_command).parameters["join_recall"].default.default
    assert default == JOIN_RECALL == DedupeConfig(text_column="q").join_recall
    assert inspect.signature(deduplicate).parameters["join_recall"].default == JOIN_RECALL


def test_the_cli_maps_its_flags_onto_the_options(monkeypatch, tmp_path):
    """``--quiet`` is ``show_progress=False``, ``--pairs`` is ``pairs_out``, ``--no-verifier`` is
    ``verifier=None``; every other option passes through under its own name."""
    from typer.testing import CliRunner

    import dupq.dedupe

    seen = {}

    class Stop(Exception):
        pass

    def fake(data, **options):
        seen.update(options, data=data)
        raise Stop

    monkeypatch.setattr(dupq.dedupe, "deduplicate", fake)
    args = ["dedupe", "in.csv", "-t", "q", "-o", str(tmp_path / "o.csv"), "-q", "--pairs", "p.csv"]
    r = CliRunner().invoke(app, [*args, "--no-verifier", "-k", "7"])
    assert isinstance(r.exception, Stop), r.output
    assert seen["show_progress"] is False and seen["pairs_out"] == "p.csv" and seen["verifier"] is None
    assert seen["k"] == 7 and seen["join_recall"] == JOIN_RECALL and seen["data"] == "in.csv"
    assert set(seen) - {"data"} == {name for name, _ in CLI_OPTIONS}
    DedupeConfig(**{k: v for k, v in seen.items() if k != "data"})  # and they make a valid config
