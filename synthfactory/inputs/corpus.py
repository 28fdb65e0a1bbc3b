"""Real human-written text that installs with the project, for `seeds.real` and `quality.reference`.

`corpus:python-docs` is the prose of the Python documentation (the reStructuredText sources that
Debian's `python3-doc` package installs; `make system-deps` installs it). It is written by people
(the CPython documentation authors), licensed under the PSF License Version 2 (permissive;
https://docs.python.org/3/license.html), and is read offline: thousands of paragraphs of modern
expository English. Only prose is kept: code, directives, tables, titles and lists are dropped, and
inline markup is reduced to its text (":func:`len`" becomes "len").

A recipe names it where it names a file: `seeds.real.path: corpus:python-docs`; as `seeds.path`,
each paragraph is a seed row with `text` and `source` (the passage a `grounded` verifier checks
rows against; recipes/grounded.yaml). The paragraphs are
written once to a JSONL file (`text` per line) in the user's cache, keyed by the docs' version.

One paragraph in HOLDOUT_BUCKETS (by a hash of its text, so the split is the same on every machine
and does not move when other paragraphs change) is held out: recipes never read it (seeds, real
rows, references), and `synthfactory probe` measures real-text perplexity on it (`held_out_paragraphs`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path

from synthfactory.cache import cache_root
from synthfactory.errors import RecipeError

CORPORA = {"python-docs": "the Python documentation's prose (Debian package python3-doc; PSF License 2.0)"}
SOURCES_GLOB = "/usr/share/doc/python3*/html/_sources"

_ROLE = re.compile(r":[a-z:+-]+:`(?:~|!)?([^`<]*?)\s*(?:<[^`>]*>)?`")  # :func:`len` / :ref:`text <target>`
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")  # `text <url>`_
_LITERAL = re.compile(r"``([^`]+)``")
_EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}([^*\n]+?)\*{1,2}(?![\w*])")
_INTERPRETED = re.compile(r"`([^`]+)`_{0,2}")
_FOOTNOTE = re.compile(r"\s*\[(?:#\w*|\*|\d+)\]_")
_SUBST = re.compile(r"\|([^|\s][^|]*)\|")
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_TITLE_RULE = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")
MIN_WORDS = 20
HOLDOUT_BUCKETS = 16  # 1 paragraph in 16 is held out for probes


def _clean(text: str) -> str:
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    text = _FOOTNOTE.sub("", text)
    text = _INTERPRETED.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _SUBST.sub(r"\1", text)
    text = re.sub(r"\\(.)", r"\1", text)
    text = re.sub(r"::$", ":", text)
    return " ".join(text.split())


def _is_prose(block: list[str]) -> bool:
    first = block[0]
    if first[:1].isspace() or first.startswith(("..", ":", ">>>", "*", "-", "+", "|", "#", "=", "(")):
        return False
    if any(_TITLE_RULE.match(line) for line in block) or re.match(r"^\d+\.\s", first):
        return False
    return True


def paragraphs(rst: str) -> list[str]:
    """The prose paragraphs of one reStructuredText source: blocks between blank lines that start
    at the left margin and are not directives, literal blocks, titles, lists or tables; kept when
    they read as sentences (at least MIN_WORDS words, mostly words, ending with a full stop)."""
    out: list[str] = []
    block: list[str] = []
    literal_next = False
    for line in [*rst.splitlines(), ""]:
        if line.strip():
            block.append(line.rstrip())
            continue
        if not block:
            continue
        if block[0][:1].isspace():
            block = []  # indented: a literal block, a directive's body or a quote; literal_next stays
            continue
        prose = _is_prose(block) and not literal_next
        literal_next = block[-1].endswith("::")
        if prose:
            text = _clean(" ".join(line.strip() for line in block))
            words = _WORD.findall(text)
            tokens = text.split()
            if (len(words) >= MIN_WORDS and len(words) >= 0.8 * len(tokens) and text.endswith((".", ".)"))
                    and "`" not in text and "::" not in text):
                out.append(text)
        block = []
    return out


def python_docs_sources() -> Path | None:
    found = sorted(glob.glob(SOURCES_GLOB))
    return Path(found[-1]) if found else None


def python_docs_paragraphs(sources: Path) -> list[str]:
    """Every prose paragraph of the docs under `sources`, in file order, each once."""
    seen: set[str] = set()
    out: list[str] = []
    for path in sorted(sources.rglob("*.rst.txt")):
        for text in paragraphs(path.read_text(encoding="utf-8", errors="replace")):
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def is_held_out(text: str) -> bool:
    """Whether a paragraph belongs to the probes' held-out split (sha256 of the text, 1 in HOLDOUT_BUCKETS)."""
    return int(hashlib.sha256(("probe-holdout:" + text).encode("utf-8")).hexdigest()[:8], 16) % HOLDOUT_BUCKETS == 0


def held_out_paragraphs(name: str = "python-docs", field: str = "probe") -> list[str]:
    """The held-out paragraphs of corpus `name`, in file order: real text no recipe reads."""
    corpus_file(name, field)  # the same checks and messages
    sources = python_docs_sources()
    assert sources is not None
    return [t for t in python_docs_paragraphs(sources) if is_held_out(t)]


def corpus_file(name: str, field: str) -> Path:
    """The JSONL file (`text` per row) of corpus `name`, written on first use; without the held-out split."""
    if name not in CORPORA:
        raise RecipeError(f"{field}: no corpus {name!r}; corpora: {', '.join(sorted(CORPORA))}")
    sources = python_docs_sources()
    if sources is None:
        raise RecipeError(f"{field}: corpus:{name} needs the Python documentation sources ({SOURCES_GLOB}): "
                          "run `make system-deps` (Debian package python3-doc)")
    files = sorted(sources.rglob("*.rst.txt"))
    key = hashlib.sha256("".join(f"{p.relative_to(sources)}:{p.stat().st_size}" for p in files).encode())
    path = cache_root("corpus") / f"{name}-{sources.parent.parent.name}-{key.hexdigest()[:12]}-seen.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                               for t in python_docs_paragraphs(sources) if not is_held_out(t)), encoding="utf-8")
        tmp.replace(path)
    return path
