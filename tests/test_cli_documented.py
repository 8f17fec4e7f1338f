"""README-documented CLI behaviour, invoked as a user would: `dupq dedupe` (--against and its column
options, BOM / cp1252 / pipe input, --sep / --encoding, --cluster components; --engine ray is in
test_dedupe_ray.py, in its Ray session),
`dupq serve` (--create, a bad --persist, a missing store), `dupq export-onnx` and `dupq version`.

Grouping is checked on vectors the tests build (test_dedupe.CraftedEmbedder and a chain below),
so each expected group follows from the test, not from a random tiny model's cosines."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dupq.cli import app
from dupq.text import text_key
from tests.optional import import_extra
from tests.test_dedupe import CRAFTED_THRESHOLD, CraftedEmbedder, _groups

RUN = CliRunner()


def _dedupe(path: Path, out: Path, *extra: str, model: str | None = None) -> pd.DataFrame:
    args = ["dedupe", str(path), "--text-column", "question", "--out", str(out), "--quiet"]
    if model is not None:
        args += ["--model", model]
    res = RUN.invoke(app, [*args, *extra])
    assert res.exit_code == 0, res.output
    return pd.read_csv(out, dtype=str, keep_default_na=False)


@pytest.fixture
def crafted_cli(tiny_model, monkeypatch) -> CraftedEmbedder:
    """Every model the CLI asks for is the crafted one (known vectors)."""
    emb = CraftedEmbedder(tiny_model)
    monkeypatch.setattr("dupq.embed.as_embedder", lambda *a, **k: emb)
    return emb


# -- dedupe ------------------------------------------------------------------------------------------
def test_against_with_its_own_column_names(crafted_cli, tmp_path):
    """--against with --against-text-column / --against-id-column: the base's own column names."""
    base = pd.DataFrame(
        {"faq_id": ["F1", "F2"], "faq_text": ["Best way to cook rice", "Why is the sky blue"]}
    )
    base.to_csv(tmp_path / "faq.csv", index=False)
    new = pd.DataFrame(
        {
            "id": ["n1", "n2", "n3"],
            "question": ["best way to cook rice?", "How to lose weight fast", "Best way to cook rice rice"],
        }
    )
    new.to_csv(tmp_path / "new.csv", index=False)
    args = ["--id-column", "id", "--against", str(tmp_path / "faq.csv"), "--against-text-column", "faq_text"]
    args += ["--against-id-column", "faq_id", "--threshold", str(CRAFTED_THRESHOLD)]
    out = _dedupe(tmp_path / "new.csv", tmp_path / "out.csv", *args)
    assert out["duplicate_of_existing"].tolist() == ["True", "False", "True"]
    assert out["duplicate_of"].tolist() == ["F1", "", "F1"]
    # without the column option the base's text column is looked for under --text-column, and named
    res = RUN.invoke(
        app,
        [
            "dedupe",
            str(tmp_path / "new.csv"),
            "--text-column",
            "question",
            "--against",
            str(tmp_path / "faq.csv"),
            "--out",
            str(tmp_path / "x.csv"),
            "--quiet",
        ],
    )
    assert res.exit_code == 2 and "question" in res.output and "faq.csv" in res.output


TEXTS = ["Café crème – “quoted” €5?", "Où est la gare?", "where is the station"]


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        (
            "bom.csv",
            ("\ufeffid,question\n" + "".join(f"{i},{t}\n" for i, t in enumerate(TEXTS))).encode("utf-8"),
        ),
        (
            "cp1252.csv",
            ("id;question\n" + "".join(f"{i};{t}\n" for i, t in enumerate(TEXTS))).encode("cp1252"),
        ),
        (
            "pipe.txt.csv",
            ("id|question\n" + "".join(f"{i}|{t}\n" for i, t in enumerate(TEXTS))).encode("utf-8"),
        ),
    ],
)
def test_detected_bom_cp1252_and_pipe_input(name, payload, tiny_model_dir, tmp_path):
    """A UTF-8 BOM, cp1252 bytes (curly quotes, en dash, euro: not latin-1) and a pipe delimiter are
    read without options: the id column is found (no BOM glued to it) and every text round-trips."""
    path = tmp_path / name
    path.write_bytes(payload)
    out = _dedupe(
        path, tmp_path / "out.csv", "--id-column", "id", "--threshold", "0.99", model=str(tiny_model_dir)
    )
    assert list(out.columns[:2]) == ["id", "question"]
    assert out["question"].tolist() == TEXTS and out["id"].tolist() == ["0", "1", "2"]


def test_sep_and_encoding_override_detection(tiny_model_dir, tmp_path):
    """--sep / --encoding are used as given: right ones read the file, a wrong --sep finds no column."""
    path = tmp_path / "export.csv"
    path.write_bytes(("id|question\n" + "".join(f"{i}|{t}\n" for i, t in enumerate(TEXTS))).encode("cp1252"))
    model = ["--model", str(tiny_model_dir), "--threshold", "0.99"]
    out = _dedupe(path, tmp_path / "out.csv", "--sep", "|", "--encoding", "cp1252", *model)
    assert out["question"].tolist() == TEXTS
    res = RUN.invoke(
        app,
        [
            "dedupe",
            str(path),
            "--text-column",
            "question",
            "--sep",
            ",",
            "--quiet",
            "--out",
            str(tmp_path / "o.csv"),
            *model,
        ],
    )
    assert res.exit_code == 2 and "question" in res.output
    latin = _dedupe(path, tmp_path / "l.csv", "--sep", "|", "--encoding", "latin-1", *model)
    assert latin["question"].tolist() != TEXTS  # the forced (wrong) encoding was obeyed, not detected


CHAIN = ["chain zero", "chain thirty", "chain sixty", "chain ninety", "chain one twenty"]


def test_cluster_components_end_to_end(tiny_model, monkeypatch, tmp_path):
    """A chain A-B-C-D-E, 30 degrees apart (neighbours cosine 0.866, two apart 0.5), threshold 0.8:
    --cluster components puts all five in one group, the default leader grouping makes {A,B,C} {D,E}."""
    rad = np.radians([0, 30, 60, 90, 120])
    vecs = np.zeros((5, 32), dtype=np.float32)
    vecs[:, 0], vecs[:, 1] = np.cos(rad), np.sin(rad)

    class Chain(CraftedEmbedder):
        VECTORS = {text_key(t): v for t, v in zip(CHAIN, vecs, strict=True)}

    emb = Chain(tiny_model)
    monkeypatch.setattr("dupq.embed.as_embedder", lambda *a, **k: emb)
    path = tmp_path / "chain.csv"
    pd.DataFrame({"id": list("ABCDE"), "question": CHAIN}).to_csv(path, index=False)
    args = ["--id-column", "id", "--threshold", "0.8"]
    comp = _dedupe(path, tmp_path / "c.csv", *args, "--cluster", "components")
    assert _groups(comp, "id") == {frozenset("ABCDE")}
    lead = _dedupe(path, tmp_path / "l.csv", *args, "--cluster", "leader")
    assert _groups(lead, "id") == {frozenset("ABC"), frozenset("DE")}
    res = RUN.invoke(
        app,
        [
            "dedupe",
            str(path),
            "--text-column",
            "question",
            "--cluster",
            "single-link",
            "--out",
            str(tmp_path / "x.csv"),
            "--quiet",
        ],
    )
    assert res.exit_code == 2 and "cluster" in res.output


# -- serve -------------------------------------------------------------------------------------------
@pytest.fixture
def no_server(monkeypatch) -> dict:
    """uvicorn.run replaced by a recorder: the app `dupq serve` built, without binding a port."""
    seen: dict = {}

    def fake_run(app_, host, port, **kw):
        seen.update(app=app_, host=host, port=port)

    monkeypatch.setattr("uvicorn.run", fake_run)
    return seen


def test_serve_create_starts_an_empty_store(no_server, tiny_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from dupq.embed import Embedder
    from dupq.matcher import Matcher

    store = tmp_path / "new-store"
    res = RUN.invoke(
        app, ["serve", "--store", str(store), "--create", "--model", str(tiny_model_dir), "--port", "8123"]
    )
    assert res.exit_code == 0, res.output
    assert no_server["port"] == 8123 and (store / "manifest.json").exists()
    with TestClient(no_server["app"]) as client:
        r = client.post("/questions", json={"questions": [{"text": "first question?", "id": 1}]})
        assert r.status_code == 201 and r.json()["saved"]
    assert 1 in Matcher.load(store, Embedder(tiny_model_dir))


def test_serve_refuses_a_missing_store_and_a_bad_persist_mode(no_server, tiny_model_dir, tmp_path):
    missing = tmp_path / "nowhere"
    res = RUN.invoke(app, ["serve", "--store", str(missing), "--model", str(tiny_model_dir)])
    assert res.exit_code == 2 and "nowhere" in res.output and "app" not in no_server
    assert not missing.exists()  # without --create nothing is made
    store = tmp_path / "s"
    RUN.invoke(app, ["serve", "--store", str(store), "--create", "--model", str(tiny_model_dir)])
    no_server.clear()
    res = RUN.invoke(app, ["serve", "--store", str(store), "--persist", "sometimes"])
    assert res.exit_code == 2 and "persist" in res.output and "write" in res.output and "app" not in no_server


# -- export-onnx, version ------------------------------------------------------------------------------
def test_export_onnx_writes_a_verified_model(tiny_model_dir, tmp_path):
    import_extra("onnxruntime", "onnx")
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")  # the export is cached beside the model
    res = RUN.invoke(app, ["export-onnx", str(model), "--backend", "onnx"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.rstrip().endswith(".onnx"))
    exported = Path(line[line.index(str(model)) :].strip())  # after any progress-bar residue
    assert exported.suffix == ".onnx" and exported.exists() and exported.is_relative_to(model)
    mean = float(res.output.split("mean ")[1].split(",")[0])
    assert mean > 0.999
    assert RUN.invoke(app, ["export-onnx", str(model), "--backend", "tensorrt"]).exit_code == 2


def test_version_prints_the_package_version():
    from dupq import __version__

    res = RUN.invoke(app, ["version"])
    assert res.exit_code == 0 and __version__ in res.output
