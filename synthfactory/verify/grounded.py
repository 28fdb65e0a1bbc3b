"""`grounded`: the response says only what its source passage (the seed's `source`) says.

Two checks, the first unsupported item named in the reason:
1. every checkable item of the response occurs in the source (`unsupported_<kind>: <item>`):
   - numbers (`number`), compared as numbers: `1,000` = `1000`, `3.10` = `3.1`; a dotted version
     such as `3.12.1` compares as text;
   - quoted strings (`quote`): "...", “...” or '...', as text with whitespace collapsed;
   - code identifiers (`identifier`), exact case, as a whole token: backticked `x` (its whole
     text), snake_case names, dotted names (`os.path.join`), calls (`len()` needs `len`);
   - capitalised names (`name`): a capitalised word that does not start a sentence, as a whole
     word ignoring case (the source may start a sentence with it);
2. every sentence of three words or more is supported by some sentence of the source: the cosine
   similarity of their all-MiniLM-L6-v2 embeddings is at least `threshold`
   (`unsupported_sentence: <first 60 chars>`). A semicolon ends a clause that is checked on its
   own; a source sentence with semicolons counts whole and clause by clause (measured: "The end
   point is never part of the generated sequence." scored 0.62 against the whole sentence it opens).

`verify_many` embeds every sentence of every claim in one call to the shared embedder. The
details carry each sentence's best similarity, so `synthfactory calibrate RECIPE --labels FILE
--verifier NAME` picks the threshold for a target precision from labelled rows that carry their
`source` (`calibrate_threshold`, `threshold_from_labels`) and prints the `options.threshold` to set.

Default threshold 0.7, measured on hand-written answers (constructed, not model outputs) to five
passages of `corpus:python-docs` (tuples, `with`, garbage collection, generator expressions, the
interpreter's licence): 11 supported paraphrases scored 0.61-0.91 (9 at or above 0.7), 11 on-topic
but unsupported claims 0.23-0.84 (9 below 0.7), 4 off-topic sentences 0.02-0.11. The whole
verifier passes the same 9 of 11 supported answers and stops 9 of 11 unsupported ones (two of
them by a name the passage lacks: "Python", "Linux"). So the sentence
check stops drift and off-topic text, not a fluent falsehood that reuses the passage's words
("Generator expressions are always faster than list comprehensions": 0.84); the item checks
catch invented numbers, names and identifiers. Tried and dropped on the same set: comparing with
pairs of adjacent source sentences (raised unsupported claims, 0.53 -> 0.65, no supported one) and
with every comma clause of long source sentences (a short restatement of one clause gained
0.61 -> 0.65, but an unsupported claim crossed 0.7); semicolon clauses, above, change nothing on
that set. A short sentence that restates part of a long source sentence can still fall below the
threshold (measured 0.64-0.68): lower `threshold`, or calibrate it, where answers are terse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import Field

from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions

DEFAULT_THRESHOLD = 0.7
MIN_SENTENCE_WORDS = 3
SNIPPET = 60

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[`*]*[A-Z0-9])|\n\s*\n|\n(?=\s*\S)")
BACKTICKED = re.compile(r"`([^`\n]+)`")
QUOTED = re.compile(r"\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|(?<![\w'])'([^'\n]{1,200})'(?![\w'])")
NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:,\d{3})*(?:\.\d+)*(?![\w]|\.\d)")
DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?![\w(])")
SNAKE = re.compile(r"(?<![\w.])_*[A-Za-z]\w*_\w+(?![\w.(])")
CALL = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\(")
WORD = re.compile(r"(?<![\w.'’-])[A-Z][A-Za-z]*(?![\w-])")
LIST_MARKER = re.compile(r"^([ \t]*)(?:[-*•]|\d+[.)])[ \t]+", re.MULTILINE)


class GroundedOptions(VerifierOptions):
    threshold: float = Field(DEFAULT_THRESHOLD, ge=-1.0, le=1.0,
                             description="least cosine similarity of a response sentence to its best source sentence")


@dataclass(frozen=True)
class Item:
    kind: str  # number | quote | identifier | name
    text: str
    start: int


def unlisted(text: str) -> str:
    """List markers (`- `, `2. `) blanked out, positions kept."""
    return LIST_MARKER.sub(lambda m: " " * len(m.group()), text or "")


def sentences(text: str) -> list[str]:
    """The text's sentences (also split at blank lines and list items), whitespace collapsed."""
    return [" ".join(part.split()) for part in SENTENCE_END.split(unlisted(text)) if part and part.strip()]


def as_number(token: str) -> Decimal | str:
    """`1,000` -> 1000, `3.10` -> 3.1; a dotted version (`3.12.1`) stays text."""
    plain = token.replace(",", "").replace("−", "-")
    if plain.count(".") > 1:
        return plain
    try:
        return Decimal(plain).normalize()
    except InvalidOperation:
        return plain


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """Blank out spans already read (a backticked or quoted part), keeping positions."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


SENTENCE_START = re.compile(r"(?:^|[.!?:][\"')\]]*\s+|\n\s*(?:[-*•]\s+|\d+[.)]\s+)?)[\"'(\[*]*(?=\w)")


def _sentence_starts(text: str) -> set[int]:
    """Positions of the first word of each sentence, line and list item."""
    return {m.end() for m in SENTENCE_START.finditer(text)}


def items(text: str) -> list[Item]:
    """The checkable items of a response, in order of position."""
    found: list[Item] = []
    spans: list[tuple[int, int]] = []
    text = unlisted(text)
    for m in BACKTICKED.finditer(text):
        ticked = m.group(1).strip()
        found.append(Item("identifier", ticked[:-2] if ticked.endswith("()") else ticked, m.start()))
        spans.append(m.span())
    rest = _mask(text, spans)
    for m in QUOTED.finditer(rest):
        quote = next(g for g in m.groups() if g is not None).strip()
        if quote:
            found.append(Item("quote", quote, m.start()))
            spans.append(m.span())
    rest = _mask(text, spans)
    code: list[tuple[int, int]] = []
    for pattern in (DOTTED, SNAKE):
        for m in pattern.finditer(rest):
            if not all(len(part) <= 1 for part in m.group().split(".")):  # e.g, i.e are not code
                found.append(Item("identifier", m.group(), m.start()))
                code.append(m.span())
    for m in CALL.finditer(rest):
        found.append(Item("identifier", m.group(1), m.start()))
        code.append(m.span(1))
    rest = _mask(rest, code)
    for m in NUMBER.finditer(rest):
        found.append(Item("number", m.group(), m.start()))
    starts = _sentence_starts(rest)
    for m in WORD.finditer(rest):
        if m.start() not in starts and m.group() != "I" and len(m.group()) > 1:
            found.append(Item("name", m.group(), m.start()))
    unique: dict[tuple[str, str], Item] = {}
    for item in sorted(found, key=lambda i: i.start):
        unique.setdefault((item.kind, item.text), item)
    return list(unique.values())


class SourceIndex:
    """What a source passage contains, for the item checks."""

    def __init__(self, source: str) -> None:
        self.text = " ".join(source.split())
        self.lower = self.text.lower()
        self.numbers = {as_number(m.group()) for m in NUMBER.finditer(self.text)}
        self.tokens = set(re.findall(r"[A-Za-z_][\w.]*\w|[A-Za-z_]", self.text))
        self.tokens |= {part for token in list(self.tokens) for part in token.split(".")}

    def has(self, item: Item) -> bool:
        if item.kind == "number":
            return as_number(item.text) in self.numbers
        if item.kind == "quote":
            return " ".join(item.text.split()) in self.text
        if item.kind == "name":
            return re.search(rf"(?<![\w]){re.escape(item.text.lower())}(?![\w])", self.lower) is not None
        code = " ".join(item.text.split())
        if re.fullmatch(r"[A-Za-z_][\w.]*", code):
            return code in self.tokens
        return code in self.text


def clauses(sentence: str) -> list[str]:
    """A sentence's parts between semicolons (each an independent clause)."""
    return [part.strip() for part in sentence.split(";") if part.strip()]


def checked_sentences(response: str) -> list[str]:
    """The response's sentences, split at semicolons too, of three words or more."""
    return [c for s in sentences(response) for c in clauses(s) if len(c.split()) >= MIN_SENTENCE_WORDS]


def source_passages(source: str) -> list[str]:
    """The source's sentences and, for one with semicolons, each clause as well."""
    whole = sentences(source)
    parts = [c for s in whole if ";" in s for c in clauses(s) if len(c.split()) >= MIN_SENTENCE_WORDS]
    return list(dict.fromkeys(whole + parts))


def _first_unsupported(claim: Claim) -> Item | None:
    index = SourceIndex(str(claim.seed.get("source") or ""))
    return next((item for item in items(claim.response or "") if not index.has(item)), None)


def threshold_from_labels(similarities: list[float], good: list[bool], target_precision: float = 0.9
                          ) -> dict[str, Any] | None:
    """The lowest threshold at which rows whose weakest sentence scores at least it are at least
    `target_precision` good (so it keeps the most recall), with that precision and recall; None
    when none reaches it. `similarities`: per labelled row, the least of its sentences' best
    similarities (`details.min_similarity`)."""
    from synthfactory.grading.calibration import threshold_for_precision

    return threshold_for_precision(good, similarities, target_precision)


def calibrate_threshold(verifier: GroundedVerifier, rows: list[dict[str, Any]], target_precision: float
                        ) -> dict[str, Any]:
    """`synthfactory calibrate --verifier NAME`: labelled rows (`text`, `source`, `good`) verified;
    a row that fails an item check scores -1 (no threshold keeps it), one with no sentence to check
    scores 1; the threshold for `target_precision`, and precision/recall at the current one."""
    from synthfactory.grading.calibration import at_threshold

    verdicts = verifier.verify_many([Claim(r["text"], {"source": r.get("source") or ""}) for r in rows])
    scores = [-1.0 if v.details.get("unsupported") or v.reason == "empty_response"
              else v.details.get("min_similarity", 1.0) if v.details.get("min_similarity") is not None else 1.0
              for v in verdicts]
    good = [bool(r["good"]) for r in rows]
    return {"rows": len(rows), "good": sum(good), "no_source": sum(not r.get("source") for r in rows),
            "item_failures": sum(s == -1.0 for s in scores),
            "at_threshold": at_threshold(good, scores, verifier.options.threshold),
            "threshold_for_target_precision": threshold_from_labels(scores, good, target_precision)}


class GroundedVerifier(Verifier):
    """Every number, quote, identifier and name of the response is in `source`, and every
    sentence is close in meaning to one of the source's."""

    name = "grounded"
    Options = GroundedOptions
    needs = ("source",)
    description = "numbers, quotes, identifiers and names occur in the seed's source; each sentence is supported"
    options: GroundedOptions

    def verify(self, claim: Claim) -> Verdict:
        return self.verify_many([claim])[0]

    def verify_many(self, claims: list[Claim]) -> list[Verdict]:
        """One embedding call for every sentence of every claim and source."""
        from synthfactory.quality.embed import shared_embedder

        plans = []
        texts: dict[str, int] = {}
        for claim in claims:
            response = checked_sentences(claim.response or "")
            source = source_passages(str(claim.seed.get("source") or ""))
            for text in (*response, *source):
                texts.setdefault(text, len(texts))
            plans.append((response, source))
        vectors = shared_embedder().encode_texts(list(texts)) if texts else None
        return [self._verdict(claim, response, source, vectors, texts)
                for claim, (response, source) in zip(claims, plans, strict=True)]

    def _verdict(self, claim: Claim, response: list[str], source: list[str], vectors: Any,
                 texts: dict[str, int]) -> Verdict:
        if not (claim.response or "").strip():
            return Verdict(False, "empty_response", {})
        best: list[float] = []
        if response and source:
            sims = vectors[[texts[s] for s in response]] @ vectors[[texts[s] for s in source]].T
            best = [round(float(v), 4) for v in sims.max(axis=1)]
        elif response:
            best = [-1.0] * len(response)
        details: dict[str, Any] = {
            "threshold": self.options.threshold,
            "sentences": [{"text": s[:SNIPPET], "best_similarity": b} for s, b in zip(response, best, strict=True)],
            "min_similarity": min(best) if best else None}
        item = _first_unsupported(claim)
        if item is not None:
            details["unsupported"] = {"kind": item.kind, "text": item.text}
            return Verdict(False, f"unsupported_{item.kind}: {item.text[:SNIPPET]}", details)
        for sentence, similarity in zip(response, best, strict=True):
            if similarity < self.options.threshold:
                return Verdict(False, f"unsupported_sentence: {sentence[:SNIPPET]}", details)
        return Verdict(True, "ok", details)

