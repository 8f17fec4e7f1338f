"""A fresh clone (no ``../shared``, no optional extras) passes ``make test`` with clear skips, while CI's
variables (``.ci/run``) turn the same absences into failures. Each case runs pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TEST = "tests/test_data.py::test_shared_sets_are_detected_by_header"


def _pytest(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUPQ_REQUIRE_")}
    env.update({"PYTHONPATH": str(REPO), **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture()
def no_shared(tmp_path: Path) -> dict[str, str]:
    return {"DUPQ_SHARED_DATA": str(tmp_path / "no-shared-here" / "data")}


def test_missing_shared_data_skips_with_a_reason(no_shared, tmp_path):
    r = _pytest([SHARED_TEST], no_shared, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 skipped" in r.stdout and "shared data not found" in r.stdout, r.stdout


@pytest.mark.parametrize("value", ["1", "true"])
def test_missing_shared_data_fails_when_ci_requires_it(no_shared, tmp_path, value):
    r = _pytest([SHARED_TEST], {**no_shared, "DUPQ_REQUIRE_SHARED": value}, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 error" in r.stdout and "DUPQ_REQUIRE_SHARED is set" in r.stdout, r.stdout


@pytest.fixture()
def without_ray(tmp_path: Path) -> dict[str, str]:
    """A ``ray`` package that fails to import, first on the path: as if the [ray] extra were absent."""
    blocker = tmp_path / "blocker" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("no ray here (test blocker)")\n')
    return {"PYTHONPATH": f"{blocker.parent}{os.pathsep}{REPO}"}


def test_missing_extra_skips_with_a_reason(without_ray, tmp_path):
    # with one test that runs, so that the exit status is the suite's (a run of skips only exits 5)
    r = _pytest(
        [
            "tests/test_dedupe_ray.py",
            f"tests/{Path(__file__).name}::test_ci_script_requires_shared_data_and_extras",
        ],
        without_ray,
        tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped" in r.stdout and "dupq[ray]" in r.stdout, r.stdout


def test_missing_extra_fails_when_ci_requires_it(without_ray, tmp_path):
    r = _pytest(["tests/test_dedupe_ray.py"], {**without_ray, "DUPQ_REQUIRE_EXTRAS": "1"}, tmp_path)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "DUPQ_REQUIRE_EXTRAS is set" in r.stdout, r.stdout


def test_ci_script_requires_shared_data_and_extras():
    text = (REPO / ".ci" / "run").read_text()
    assert "export DUPQ_REQUIRE_SHARED=1" in text and "export DUPQ_REQUIRE_EXTRAS=1" in text


def test_a_hanging_test_is_stopped_by_the_configured_timeout(tmp_path, pytestconfig):
    # pytest-timeout (the dev extra) is active with the project's limit ...
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert 0 < int(pytestconfig.getini("timeout")) <= 900
    # ... and it really stops a test that blocks (as a readline() on a silent subprocess would).
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hang():\n    time.sleep(60)\n")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2", "test_hang.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Timeout" in r.stdout, r.stdout + r.stderr
