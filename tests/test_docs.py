"""The README and the docs/ pages: every page is in mkdocs.yml's nav, every relative link and
image points at a file that exists (and at a heading that exists, for #anchors), and no page
speaks of paths outside the repository. `make docs` (mkdocs build --strict) checks the site as
well; these run in `make test` in well under a second."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def nav_files(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, list):
        return set().union(*(nav_files(n) for n in node))
    if isinstance(node, dict):
        return set().union(*(nav_files(v) for v in node.values()))
    return set()


def anchors(page: Path) -> set[str]:
    """The ids MkDocs's toc extension gives the page's headings (lower case, punctuation dropped,
    spaces to dashes)."""
    text = FENCE.sub("", page.read_text())
    ids = set()
    for title in re.findall(r"^#{1,6}\s+(.*?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
        ids.add(re.sub(r"[\s]+", "-", slug))
    return ids


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(FENCE.sub("", page.read_text())) if not re.match(r"[a-z]+:", t)]


def test_every_page_is_in_the_nav():
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    in_nav = nav_files(config["nav"])
    assert {p.name for p in PAGES} == in_nav, "pages and mkdocs.yml nav differ"


@pytest.mark.parametrize("page", [REPO / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_no_paths_outside_the_repo():
    for page in [REPO / "README.md", *PAGES]:
        assert not re.search(r"/work/|this VM|\bsession", page.read_text()), page.name


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_sample_unknown_style_errors_are_the_programs():
    """The sample one-line errors about a misspelt bundled style print what the program prints
    (e.g. every bundled network, not the three there were when the page was written)."""
    from fastnst import zoo
    from fastnst.errors import FastNSTError

    found = 0
    for page in [REPO / "README.md", *PAGES]:
        text = page.read_text()
        pattern = r"\$ python stylize\.py style=(\S+) .*\n(fastnst: error: unknown style .*)"
        for name, line in re.findall(pattern, text):
            with pytest.raises(FastNSTError) as error:
                zoo.bundled_network(name)
            assert line == f"fastnst: error: {error.value}", page.name
            found += 1
    assert found, "no sample error found: update this test"


def test_six_styles_step_counts_in_the_docs_are_its_files():
    import torch

    from fastnst.zoo import bundled_styles

    meta = torch.load(bundled_styles()["six_styles"], weights_only=True, map_location="cpu")["meta"]
    steps = int(meta["recipe"]["steps"])
    said, stages = [], []
    for page in (DOCS / "inference.md", DOCS / "quality.md"):
        text = page.read_text()
        said += re.findall(r"six_styles`? (?:is |\()(\d+)[ -]steps?", text)
        said += re.findall(r"^\| six_styles \| (\d+) \|", text, re.M)
        stages += re.findall(r"--multi (?:.*\n)??.*?--steps (\d+)", text)
    # the prose and the table give the file's steps; the recipe's last stage makes the file
    assert len(said) >= 2 and set(said) == {str(steps)}, said
    assert stages and stages[-1] == str(steps), stages


def test_webcam_model_examples_name_networks_not_architectures():
    from fastnst.config import CONFIG_DIR

    architectures = {p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")}
    for page in [REPO / "README.md", *PAGES]:
        for value in re.findall(r"webcam_model=([^\s`\"]+)", page.read_text()):
            assert value.strip("'").split(" ")[0] not in architectures, (page.name, value)
