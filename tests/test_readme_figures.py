"""The README's measured figures trace to a run: each carries a citation of the result JSON and the key it
comes from, and this checks that the file exists and holds that value (rounded as printed).

The convention, right after the figure, invisible when rendered:

    precision 0.864 <!-- cite: benchmarks/results/calibrate_torch.json at_default/recall -->

The key path is ``/``-separated: a dict key, a list index, or ``field=value`` (the list element whose
``field`` equals ``value``; ``a=x&b=y`` for several fields; ``%20`` for a space in a key). ``x100``
after the path scales a fraction printed as a percentage. The figure is the last number before the
comment on its line; it must equal the JSON value rounded to the decimals
printed (thousands separators ignored).
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CITE = re.compile(r"<!-- cite: (\S+) (\S+)(?: x(\d+))? -->")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _citations() -> list[tuple[int, str, str, str, int]]:
    """``(line number, figure as printed, file, key path, scale)`` for every citation in the README."""
    out = []
    for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        for m in CITE.finditer(line):
            before = CITE.sub("", line[: m.start()])
            numbers = NUMBER.findall(before)
            assert numbers, f"README.md:{n}: a citation with no figure before it"
            out.append((n, numbers[-1], m.group(1), m.group(2), int(m.group(3) or 1)))
    return out


def resolve(data: object, path: str) -> object:
    """Follow ``path``; ``a=x&b=y`` selects the one list element with both fields, ``%20`` is a space."""
    from urllib.parse import unquote

    for part in (unquote(p) for p in path.split("/")):
        if isinstance(data, list):
            if "=" in part:
                conditions = [c.split("=", 1) for c in part.split("&")]
                matches = [
                    x for x in data if isinstance(x, dict) and all(str(x.get(f)) == v for f, v in conditions)
                ]
                assert len(matches) == 1, f"{part!r} selects {len(matches)} elements"
                data = matches[0]
            else:
                data = data[int(part)]
        else:
            assert isinstance(data, dict) and part in data, f"no key {part!r}"
            data = data[part]
    return data


def test_the_readme_cites_its_figures():
    assert len(_citations()) >= 40


@pytest.mark.parametrize(("line", "figure", "file", "path", "scale"), _citations())
def test_each_cited_figure_is_in_its_json(line, figure, file, path, scale):
    source = REPO / file
    assert source.is_file(), f"README.md:{line} cites {file}, which does not exist"
    value = resolve(json.loads(source.read_text(encoding="utf-8")), path)
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{file} {path} = {value!r}"
    printed = Decimal(figure.replace(",", ""))
    exponent = printed.as_tuple().exponent
    held = (Decimal(repr(float(value))) * scale).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
    assert held == printed, f"README.md:{line} prints {figure} but {file} {path} holds {value} (x{scale})"


def test_every_result_file_the_readme_names_exists():
    named = set(re.findall(r"benchmarks/results/[\w.-]+\.json", README.read_text(encoding="utf-8")))
    assert named
    missing = sorted(n for n in named if not (REPO / n).is_file())
    assert not missing, missing
