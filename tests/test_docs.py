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
