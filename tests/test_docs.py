"""The README stays a front page and the docs site builds strictly, so a broken link fails a test
instead of a reader. Fast: one `mkdocs build` (a few seconds), no engine, no server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 250

# [text](target) and [text](target "title"); images too. Code spans and fences are removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def markdown_links(text: str) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    return LINK.findall(text)


def relative_links(text: str) -> list[str]:
    """Links to files of the repository: not web addresses, mail or anchors on the same page."""
    return [link for link in markdown_links(text)
            if not re.match(r"(https?:|mailto:|#)", link, re.I)]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once, strictly. No `-q`: mkdocs 1.6 counts strict-mode warnings only when
    they are logged, and `-q` silences them, so a broken link would build with exit 0."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_the_docs_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).with_suffix("")
        built = site / ("index.html" if rel.name == "index" else f"{rel}/index.html")
        assert built.is_file(), f"{page.relative_to(ROOT)} was not built"


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail into docs/")


def test_every_relative_link_in_the_readme_names_a_file() -> None:
    links = relative_links(README.read_text(encoding="utf-8"))
    assert links, "the README links into docs/; the link reader found none"
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def test_every_readme_link_into_the_docs_names_a_heading_there(site: Path) -> None:
    """The build checks anchors between pages; the README is outside it, so its anchors are
    checked here against the built pages (MkDocs and GitHub make the same ids for these headings)."""
    wrong = []
    for link in relative_links(README.read_text(encoding="utf-8")):
        path, _, anchor = link.partition("#")
        if not anchor or not path.startswith("docs/") or not path.endswith(".md"):
            continue
        rel = Path(path).relative_to("docs").with_suffix("")
        page = site / ("index.html" if rel.name == "index" else f"{rel}/index.html")
        ids = _Ids()
        ids.feed(page.read_text(encoding="utf-8"))
        if anchor not in ids.ids:
            wrong.append(link)
    assert not wrong, f"README.md links to headings that do not exist: {wrong}"


def nav_pages(nav: list) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                pages |= nav_pages(value)
            elif isinstance(value, str) and not re.match(r"https?:", value):
                pages.add(value)
    return pages


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["strict"] is True
    assert config["theme"]["name"] == "material"
    listed = nav_pages(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - listed == set(), f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"nav entries with no page: {sorted(listed - pages)}"


def test_the_link_reader_sees_links_and_skips_code() -> None:
    """A link checker that reads no links passes on anything."""
    text = ("[a](docs/a.md) [b](docs/b.md#x \"t\") [w](https://x.org) [m](mailto:a@b) [h](#here)\n"
            "`[c](in/code.md)`\n```\n[d](in/fence.md)\n```\n![img](docs/i.png)\n")
    assert relative_links(text) == ["docs/a.md", "docs/b.md#x", "docs/i.png"]
