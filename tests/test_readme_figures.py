"""The measured figures in README.md and the documentation pages (docs/*.md) trace to a run: each carries a
citation of the result JSON and the key it comes from, and this checks that the file exists and holds that
value (rounded as printed).

The convention, right after the figure, invisible when rendered:

    precision 0.864 <!-- cite: benchmarks/results/calibrate-torch.json at_default/recall -->

The key path is ``/``-separated: a dict key, a list index, or ``field=value`` (the list element whose
``field`` equals ``value``; ``a=x&b=y`` for several fields; ``%20`` for a space in a key). ``x100``
after the path scales a fraction printed as a percentage. The figure is the last number before the
comment on its line; it must equal the JSON value rounded to the decimals
printed (thousands separators ignored).

This is a documentation check, not a test of behaviour: it is ONE test, which collects every mismatch of
every page and reports them together.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITE = re.compile(r"<!-- cite: (\S+) (\S+)(?: x(\d+))? -->")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
RESULT_NAME = re.compile(r"benchmarks/results/[\w.-]+\.json")


def pages() -> list[Path]:
    """README.md and every Markdown page of the documentation site."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def citations(page: Path) -> list[tuple[str, str, str, str, int]]:
    """``(where, figure as printed, file, key path, scale)`` for every citation on ``page``."""
    out = []
    rel = page.relative_to(REPO)
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for m in CITE.finditer(line):
            before = CITE.sub("", line[: m.start()])
            numbers = NUMBER.findall(before)
            out.append(
                (f"{rel}:{n}", numbers[-1] if numbers else "", m.group(1), m.group(2), int(m.group(3) or 1))
            )
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


def check_citation(where: str, figure: str, file: str, path: str, scale: int, cache: dict) -> str | None:
    """``None`` when the figure matches its JSON, else what is wrong."""
    if not figure:
        return f"{where}: a citation with no figure before it"
    source = REPO / file
    if not source.is_file():
        return f"{where} cites {file}, which does not exist"
    if file not in cache:
        cache[file] = json.loads(source.read_text(encoding="utf-8"))
    try:
        value = resolve(cache[file], path)
    except (AssertionError, IndexError, ValueError) as exc:
        return f"{where}: {file} {path}: {exc}"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{where}: {file} {path} = {value!r}, not a number"
    printed = Decimal(figure.replace(",", ""))
    exponent = printed.as_tuple().exponent
    held = (Decimal(repr(float(value))) * scale).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
    if held != printed:
        return f"{where} prints {figure} but {file} {path} holds {value} (x{scale})"
    return None


def mismatches() -> tuple[int, list[str]]:
    """How many citations were checked, and every problem found (cited values, named result files, and
    results missing from the index on the benchmarks page)."""
    problems: list[str] = []
    cache: dict = {}
    checked = 0
    for page in pages():
        for cite in citations(page):
            checked += 1
            problem = check_citation(*cite, cache)
            if problem:
                problems.append(problem)
        for name in sorted(set(RESULT_NAME.findall(page.read_text(encoding="utf-8")))):
            if not (REPO / name).is_file():
                problems.append(f"{page.relative_to(REPO)} names {name}, which does not exist")
    index = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for result in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        if f"`{result.name}`" not in index:
            problems.append(f"docs/benchmarks.md does not list {result.name} in its index of results")
    return checked, problems


def test_every_cited_figure_in_the_readme_and_docs_is_in_its_json():
    checked, problems = mismatches()
    assert checked >= 40, f"only {checked} citations found"
    assert not problems, (
        f"{len(problems)} of {checked} citations or named results do not hold:\n" + "\n".join(problems)
    )
