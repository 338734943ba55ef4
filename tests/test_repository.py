"""The repository is self-contained: no tracked file points outside it, every section anchor of ``docs/method.md``
cited anywhere exists, the notebooks carry slide metadata, and the loss-weight table of ``docs/method.md`` matches
:meth:`LossWeights.preset`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from idkl_lib.config import LossWeights
from idkl_lib.config.ablation import ABLATION_PRESETS

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"

# The patterns are assembled from pieces so that this file does not match them itself.
OUTSIDE_REFERENCES = {
    "the outside specification": re.compile(r"\b" + "SP" + r"EC\b"),
    "a sibling folder of the checkout": re.compile(r"\.\./" + "shared"),
    "a section number of the outside specification": re.compile("\u00a7" + r"\s*\d|\bpitfalls? \d"),
    "an absolute path of a work machine": re.compile("/" + "work" + "/|/" + "home" + r"/\w|/" + "Users" + r"/\w"),
}
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?:href|src)=\"([^\"]+)\"")
METHOD_CITATION = re.compile(r"docs/method\.md#([\w-]+)")
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".json", ".html", ".css", ".js"}
TEXT_NAMES = {"Makefile", ".gitignore", ".gitattributes", ".pre-commit-config.yaml"}


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode("utf-8").split("\0") if name]


def text_files() -> list[Path]:
    return [p for p in tracked_files() if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)]


def markdown_texts(path: Path) -> list[str]:
    """The markdown a reader sees: the whole file for ``.md``, the markdown cells of a notebook."""
    if path.suffix == ".md":
        return [path.read_text(encoding="utf-8")]
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return []


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation (markup included) removed, each space -> a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def method_anchors() -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in METHOD.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match and not in_fence:
            slug = github_anchor(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_github_anchor_rules() -> None:
    assert github_anchor("3.4 Information purifier losses") == "34-information-purifier-losses"
    assert github_anchor("5.2 Metrics: CMC, mAP, mINP") == "52-metrics-cmc-map-minp"
    assert github_anchor("`LossWeights` presets") == "lossweights-presets"
    assert github_anchor("A — B") == "a--b"
    assert github_anchor("3.8 `id_sp` weight") == "38-id_sp-weight"


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    offences = []
    for path in text_files():
        rel = path.relative_to(ROOT).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in OUTSIDE_REFERENCES.items():
                if pattern.search(line):
                    offences.append(f"{rel}:{number}: {what}: {line.strip()[:100]}")
        for markdown in markdown_texts(path):
            for match in LINK.finditer(markdown):
                target = (match.group(1) or match.group(2)).split("#")[0]
                if not target or re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                    continue  # an anchor in the same page or a URL
                resolved = (ROOT / target.lstrip("/")) if target.startswith("/") else (path.parent / target)
                if target.startswith("/") or not resolved.resolve().is_relative_to(ROOT):
                    offences.append(f"{rel}: link {target!r} leaves the repository")
    assert not offences, "tracked files refer to paths outside the repository:\n" + "\n".join(offences)


def test_every_cited_method_anchor_exists() -> None:
    anchors = method_anchors()
    assert "3-losses" in anchors and "7-deliberate-deviations" in anchors
    missing = []
    for path in text_files():
        rel = path.relative_to(ROOT).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            missing += [f"{rel}:{number}: #{a}" for a in METHOD_CITATION.findall(line) if a not in anchors]
    for path in [p for p in tracked_files() if p.suffix in (".md", ".ipynb")]:
        for markdown in markdown_texts(path):
            for match in LINK.finditer(markdown):
                target, _, anchor = (match.group(1) or match.group(2)).partition("#")
                points_here = (path.parent / target).resolve() == METHOD if target else path == METHOD
                if anchor and points_here and anchor not in anchors:
                    missing.append(f"{path.relative_to(ROOT).as_posix()}: link {target}#{anchor}")
    assert not missing, f"cited anchors missing from docs/method.md (headings give {sorted(anchors)}):\n" + "\n".join(
        missing
    )


def test_markdown_links_to_repository_files_exist() -> None:
    broken = []
    for path in tracked_files():
        if path.suffix not in (".md", ".ipynb"):
            continue
        for markdown in markdown_texts(path):
            for match in LINK.finditer(markdown):
                target = (match.group(1) or match.group(2)).split("#")[0]
                if not target or re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith(("/", "//")):
                    continue
                resolved = (path.parent / target).resolve()
                if resolved.is_relative_to(ROOT / "reports") and resolved != ROOT / "reports" / "README.md":
                    continue  # run folders are generated, never tracked
                if not resolved.exists():
                    broken.append(f"{path.relative_to(ROOT).as_posix()}: {target}")
    assert not broken, "markdown links to missing files:\n" + "\n".join(broken)


def test_method_weight_table_matches_the_presets() -> None:
    lines = METHOD.read_text(encoding="utf-8").splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("| term | equation |"))
    columns = [c.strip() for c in lines[header_at].strip("|").split("|")]
    presets = [re.findall(r"`(\w+)`", c) for c in columns[2:]]
    rows = {}
    for line in lines[header_at + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = [float(v) for v in cells[2:]]
    assert list(rows) == list(LossWeights.names()), "the table must list every term, in LossWeights order"
    covered = {name for names in presets for name in names}
    base = set(LossWeights.PRESETS) - set(ABLATION_PRESETS)  # the ablation presets: docs/ablation.md
    assert covered == base, f"table columns {sorted(covered)} vs presets {sorted(base)}"
    for col, names in enumerate(presets):
        for name in names:
            weights = LossWeights.preset(name)
            documented = {term: values[col] for term, values in rows.items()}
            actual = {term: getattr(weights, term) for term in LossWeights.names()}
            assert documented == actual, f"docs/method.md weights of preset {name!r} differ from LossWeights"


SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}


def test_notebooks_carry_slide_metadata() -> None:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        types = [c["metadata"].get("slideshow", {}).get("slide_type") for c in cells]
        assert all(t in SLIDE_TYPES for t in types), f"{path.name}: cells without a valid slide_type: {types}"
        assert types[0] == "slide", f"{path.name}: the title cell must open a slide"
        parameters = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(parameters) == 1 and parameters[0]["metadata"]["slideshow"]["slide_type"] == "skip", path.name
        assert any(t == "fragment" for t, c in zip(types, cells, strict=True) if c["cell_type"] == "code"), (
            f"{path.name}: no code cell is shown in the slides"
        )
