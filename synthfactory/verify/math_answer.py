"""`math_answer`: the response's final answer is equivalent to the seed's `answer`, judged by
Hugging Face's math-verify (LaTeX/plain parsing into sympy, then numeric and symbolic equivalence),
not by string equality.

The final answer is the LAST closed `\\boxed{...}` (nested braces fine; an unclosed last one is
`unparseable_answer`, a cut-off response does not fall back to an earlier box), else the last line
that begins with `Answer:` or `Final answer:` (case-insensitive, markdown such as `**Answer:**`
tolerated) when nothing but blank lines follows it (a response that goes on after its Answer: line
has not given a final answer: measured on the math recipe, the text after it often contradicts it),
else, with neither, the answer the prose states, else the row fails `no_final_answer`.

A stated answer (no box, no `Answer:` line): "The answer is 12.", "the final answer is 12", "So, the
answer is $12$.", "The correct answer is: 12 apples", "The answer to the problem is 12", or a GSM8K
`#### 12` line; what is stated is a number or formula (no word but LaTeX commands) with at most four
unit words after it. It must be the response's last sentence, like an Answer: line (measured on a
math run: of 40 responses that went on after it, 7 had the right answer), and every answer stated must
be the same (`#### 3` then "The answer is 32." is `no_final_answer: different answers stated`). A
hedge is not an answer and fails the row `no_final_answer: a hedged answer`: a modal ("the answer
might/could/would be 5"), a hedge word in what is stated ("is probably 5", "about 5", "either 4 or 5",
"is not 5") or before it in its sentence ("I think the answer is 5"). "= 12" at the end of the
working, or "So Sam has 12 apples.", is not a stated answer. Measured on the 253 `no_final_answer`
rows of one math.yaml run (SmolLM2-135M, 400 rows): 36 now pass (right answer stated), 89 fail as a
wrong answer, 40 go on after it, 5 state different answers, 3 hedge, 69 state none.

What counts as equal (math-verify's rules plus one of ours):
- `0.5`, `1/2`, `\\frac{1}{2}` and `\\dfrac12` are equal; `1,000` equals `1000`; `50%` equals both 50
  and 0.5 (math-verify's percent rule); `x = 3` equals 3; `12.0` equals 12, `12.000001` does not.
- ours: a plain number with a currency sign and/or trailing unit words (`$12`, `\\$12`, `12 apples`,
  `12 dollars`) is that number. Anything else is parsed as LaTeX, so a hedge (`11 or 12`, `11, 12`)
  is a set or a product and fails.
- an equation counts as its right side (math-verify's rule: `7 + 5 = 12` equals 12), and one of
  numbers only must also hold (ours: `11 = 12` fails as a false equation).

Threads and hostile text: math-verify's own timeouts use `signal.alarm`, which works only in the
main thread, and this verifier runs in worker threads (the local executor, Prefect's thread task
runner). So it calls `parse(..., parsing_timeout=None)` and `verify(..., timeout_seconds=None)`, the
documented way to run without signals, and bounds the work itself instead: only the extracted
answer (at most `MAX_ANSWER_CHARS`) is ever parsed, and the parsed sympy tree is inspected (never
evaluated) before any comparison; a tower of powers, a large exponent, a factorial of a large
number, or a sum/product/integral/limit is `unparseable_answer: too costly ...`. Measured here: without
that guard `verify(12, 9^{9^{9^9}})` ran past a 20 s limit and `verify(12, 1000000!)` took 5 s. Nothing here
evals or sympifies model text; only math-verify's parser reads it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions

MAX_ANSWER_CHARS = 200  # an extracted final answer longer than this is not an answer, and costly to parse
MAX_EXPONENT = 1000  # |numeric exponent| above this, or a power inside an exponent, is refused
MAX_FACTORIAL = 1000
MAX_STATEMENTS = 10  # distinct earlier stated answers compared with the last; more is not one answer
SNIPPET = 60
NO_ANSWER_NOTES = {"hedged": "a hedged answer", "unreadable": "a stated answer that is not a number or formula",
                   "different_answers": "different answers stated", "statement_not_last": "text after the answer"}

BOXED = re.compile(r"\\boxed\s*\{")
ANSWER_LINE = re.compile(r"^[\s>#*_\-]*(?:final\s+)?answer(?:\s|[*_])*[:：]\s*(.*)$", re.IGNORECASE)  # linear
TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}$")
# "The answer is 12.", "So, the final answer is $12$.", "the answer to the problem is: 12 apples"
ANSWER_STATEMENT = re.compile(
    r"\b(?:the|my|our)\s+(?:(?:final|correct|right|actual)\s+)?answer"
    r"(?:\s+to\s+(?:the|this)\s+(?:question|problem))?\s*"
    r"(?P<verb>is\b|was\b|=|:|(?:might|may|could|would|should|seems|appears)\b)[ \t]*:?", re.IGNORECASE)
GSM8K_LINE = re.compile(r"^[ \t]*####[ \t]*(?=\S)", re.MULTILINE)  # `#### 12`, GSM8K's final-answer mark
# the end of a stated answer: a line end, or `.`/`!`/`?`/`;`/`,` before a space or the end (not `4.5`, `1,000`)
STATEMENT_END = re.compile(r"\n|[.!?;,](?=\s|$)")
# a stated answer: no letter but LaTeX commands (`$12$`, `\\frac{1}{2}`, `10 + 1 = 11`), then at most
# four words (units: `12 apples`, `4 cm`, `2 pens in total`)
STATED = re.compile(r"^(?P<core>(?:[^A-Za-z\\]|\\[A-Za-z]+)+?)"
                    r"(?:\s+(?P<units>[A-Za-z][A-Za-z'\-]*(?:\s+[A-Za-z][A-Za-z'\-]*){0,3}))?$")
HEDGE_VERBS = frozenset("might may could would should seems appears".split())
# in the stated answer ("is probably 5", "either 4 or 5", "is not 5") or before it in its sentence
# ("I think the answer is 5")
HEDGE_WORDS = frozenset("""probably maybe perhaps possibly likely approximately about around roughly nearly
    almost not either or between guess unclear unknown""".split())
HEDGE_LEAD = re.compile(r"\b(?:think|guess|believe|maybe|perhaps|probably|possibly|assuming|assume|suppose|"
                        r"unless|not\s+sure)\b", re.IGNORECASE)
FILLER = re.compile(r"^(?:indeed|simply|just|exactly|clearly)\s+", re.IGNORECASE)  # "the answer is indeed 7"
LATEX_COMMANDS = frozenset("frac dfrac tfrac times div cdot text mathrm sqrt left right".split())
# a plain number with an optional sign, currency and unit words, and no other digit
PLAIN_NUMBER = re.compile(
    r"^(?P<sign>[-−]?)\s*(?:\\?\$|€|£|¥)?\s*(?P<sign2>[-−]?)\s*(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"\s*(?P<pct>\\?%)?\s*(?P<unit>[A-Za-z][A-Za-z .'/\-]*)?$")
# words after a number that change its value: `3 pi`, `5 sqrt`, `12 million`, `2 x` are not 3, 5, 12, 2
NOT_UNITS = frozenset("""pi e i x y z n sqrt root squared cubed factorial million millions billion billions
    thousand thousands hundred hundreds trillion dozen plus minus times over divided by percent
    degrees radians half halves third thirds quarter quarters""".split())


class _DropTimeoutWarning(logging.Filter):
    """math-verify warns once that its timeout is off; here that is by design (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())


class MathAnswerOptions(VerifierOptions):
    pass


def short(text: Any, limit: int = SNIPPET) -> str:
    """One line, at most `limit` characters (for reasons)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def last_boxed(text: str) -> tuple[str | None, bool]:
    """The contents of the last `\\boxed{...}` and whether a box was there at all (an unclosed last
    box gives (None, True))."""
    starts = [m.end() for m in BOXED.finditer(text)]
    if not starts:
        return None, False
    start, depth = starts[-1], 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i], True
    return None, True


def answer_line(text: str) -> tuple[str | None, bool]:
    """What follows `Answer:` on the last line that begins with it (the next non-empty line when
    the answer sits on its own line), and whether that is where the response ends: text after the
    answer ("Answer: 2. Quinn doesn't have 2 eggs left.") takes it back, so it is not final."""
    lines = text.splitlines()
    for k in range(len(lines) - 1, -1, -1):
        match = ANSWER_LINE.match(lines[k])
        if match:
            rest, end = match.group(1).strip(), k
            if not rest.strip("*_ "):
                end = next((j for j in range(k + 1, len(lines)) if lines[j].strip()), k)
                rest = lines[end].strip() if end > k else ""
            return rest, not any(line.strip() for line in lines[end + 1:])
    return None, False


@dataclass(frozen=True)
class Statement:
    """One answer stated in prose ("The answer is 12.") or as a `#### 12` line."""

    answer: str  # what was stated, as written ('' when hedged or unreadable)
    start: int
    end: int  # where the stated answer ends
    hedged: str = ""  # the hedge, e.g. "probably 5"


def statement_at(text: str, start: int, lead: str, verb: str) -> Statement | None:
    """The answer stated from `start` to the end of its sentence; None when no number is stated
    ("the answer is simply the number of books left")."""
    end_match = STATEMENT_END.search(text, start, start + MAX_ANSWER_CHARS + 1)
    end = end_match.start() if end_match else min(len(text), start + MAX_ANSWER_CHARS + 1)
    said = text[start:end].strip()
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", said)}
    lead_hedge = HEDGE_LEAD.search(lead)
    if verb.lower() in HEDGE_VERBS or words & HEDGE_WORDS or lead_hedge:
        return Statement("", start, end, hedged=short(f"{lead_hedge.group(0) + ' … ' if lead_hedge else ''}"
                                                      f"answer {verb} {said}", 40))
    said = FILLER.sub("", said.strip("\"'`*_ ")).strip("\"'`*_ ")
    match = STATED.match(said) if len(said) <= MAX_ANSWER_CHARS else None
    core = match.group("core") if match else ""
    if not re.search(r"\d", core) or any(c.lower() not in LATEX_COMMANDS for c in re.findall(r"\\([A-Za-z]+)", core)):
        return None if not re.search(r"\d", said) else Statement("", start, end)
    return Statement(said, start, end)


def answer_statements(text: str) -> list[Statement]:
    """Every answer stated in prose or on a `####` line, in order (hedged and unreadable ones included)."""
    found: list[Statement] = []
    for m in ANSWER_STATEMENT.finditer(text):
        lead = text[max(0, m.start() - MAX_ANSWER_CHARS):m.start()]  # its sentence, up to the mention
        lead = lead[max(lead.rfind("\n"), *(lead.rfind(p) for p in (". ", "! ", "? "))) + 1:]
        statement = statement_at(text, m.end(), lead, m.group("verb"))
        if statement is not None:
            found.append(statement)
    for m in GSM8K_LINE.finditer(text):
        statement = statement_at(text, m.end(), "", "is")
        if statement is not None and not statement.hedged:
            found.append(statement)
    return sorted(found, key=lambda s: s.start)


def stated_value(answer: str) -> tuple[Any | None, str]:
    """A stated answer's value (an equation's right side) and the text to compare: the whole answer
    when it is a plain number with units, else its part before the unit words."""
    import sympy

    match = STATED.match(answer)
    text = answer if PLAIN_NUMBER.match(answer) or match is None else match.group("core").strip()
    value, _ = parse_answer(clean(text))
    return (value.rhs if isinstance(value, sympy.Eq) else value), text


def stated_answer(response: str) -> tuple[str | None, str]:
    """The answer the prose states, when the response has neither a box nor an `Answer:` line:
    (text, answer_statement), or (a note, hedged | unreadable | different_answers | statement_not_last)
    or (None, none)."""
    from math_verify import verify

    statements = answer_statements(response)
    if not statements:
        return None, "none"
    hedged = next((s for s in statements if s.hedged), None)
    if hedged is not None:
        return hedged.hedged, "hedged"
    last = statements[-1]
    if not last.answer:
        return short(response[last.start:last.end]), "unreadable"
    if response[last.end:].strip(" \t\r\n.!\"'*_`"):
        return short(response[last.end:].strip(), 40), "statement_not_last"
    final, text = stated_value(last.answer)
    others = list(dict.fromkeys(s.answer for s in statements[:-1] if s.answer and s.answer != last.answer))
    if final is None:
        return text, "answer_statement"  # unparseable: the verdict says why
    if len(others) > MAX_STATEMENTS:
        return f"{len(others) + 1} different answers", "different_answers"
    for other in others:
        value, other_text = stated_value(other)
        if value is not None and not verify(final, value, timeout_seconds=None):
            return f"{short(other_text, 30)}, then {short(text, 30)}", "different_answers"
    return text, "answer_statement"


def final_answer(response: str) -> tuple[str | None, str]:
    """(the final answer's text, where it came from: boxed | answer_line | answer_statement), or why
    there is none (answer_not_last | hedged | unreadable | different_answers | statement_not_last | none,
    with a note as the text)."""
    boxed, had_box = last_boxed(response)
    if had_box:
        return boxed, "boxed"
    line, last = answer_line(response)
    if line is None:
        return stated_answer(response)
    return (line, "answer_line") if last else (line, "answer_not_last")


def clean(text: str) -> str:
    """Markdown emphasis, a whole-answer `\\text{...}`, a trailing full stop and outer whitespace off."""
    text = text.strip().strip("*_`").strip()
    wrapped = TEXT_WRAPPER.match(text)
    text = wrapped.group(1).strip() if wrapped else text
    return text[:-1].rstrip() if text.endswith(".") else text


def to_parse(text: str) -> str:
    """The string handed to math-verify: a plain number (units and currency dropped, thousands
    separators removed), else the text as LaTeX math (`$...$`)."""
    match = PLAIN_NUMBER.match(text)
    unit_words = re.findall(r"[A-Za-z]+", match.group("unit") or "") if match else []
    if match and not any(len(w) == 1 or w.lower() in NOT_UNITS for w in unit_words):
        sign = "-" if match.group("sign") or match.group("sign2") else ""
        percent = r"\%" if match.group("pct") else ""
        return f"${sign}{match.group('num').replace(',', '')}{percent}$"
    return text if text.startswith("$") else f"${text}$"


def too_costly(expr: Any) -> str | None:
    """Why comparing this parsed answer could run away (inspected, never evaluated), or None."""
    import sympy
    from sympy.concrete.products import Product
    from sympy.concrete.summations import Sum

    if isinstance(expr, sympy.MatrixBase):
        return next((why for why in map(too_costly, list(expr)) if why), None)
    if not isinstance(expr, sympy.Basic):
        return None
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (Sum, Product, sympy.Integral, sympy.Limit, sympy.Derivative)):
            return f"{type(node).__name__.lower()}"
        if isinstance(node, sympy.Pow) and not node.exp.free_symbols:
            exponent = node.exp
            if exponent.has(sympy.Pow):
                return "a tower of powers"
            if not exponent.is_Number:  # an unevaluated product or sum: 10^{99*99*99*99*99}
                return "an exponent that is not a plain number"
            if abs(exponent) > MAX_EXPONENT:
                return f"exponent above {MAX_EXPONENT}"
            if node.base.has(sympy.Pow, sympy.factorial) and not node.base.free_symbols:
                return "a power of a power"  # ((10^{1000})^{1000})^{1000}
        if isinstance(node, (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.gamma,
                             sympy.binomial, sympy.RisingFactorial, sympy.FallingFactorial)):
            if any(not (a.is_Integer and abs(a) <= MAX_FACTORIAL) for a in node.args):
                return f"{type(node).__name__} of a large or non-integer argument"
    return None


def parse_answer(text: str) -> tuple[Any | None, str | None]:
    """(the sympy value math-verify parses from `text`, None) or (None, why it cannot be used)."""
    from math_verify import parse

    if len(text) > MAX_ANSWER_CHARS:
        return None, f"too long ({len(text)} chars)"
    match = PLAIN_NUMBER.match(text)
    word = next((w for w in re.findall(r"[A-Za-z]+", match.group("unit") or "")
                 if len(w) == 1 or w.lower() in NOT_UNITS), None) if match else None
    if word is not None:  # `5 sqrt`, `12 million`: not the plain number, and not math we can read
        return None, f"a number followed by {word!r}: {short(text)}"
    parsed = parse(to_parse(text), parsing_timeout=None)
    value = next((p for p in parsed if not isinstance(p, str)), None)
    if value is None:
        return None, short(text) or "(empty)"
    why = too_costly(value)
    return (None, f"too costly ({why}): {short(text)}") if why else (value, None)


def false_equation(value: Any) -> bool:
    """`11 = 12`: math-verify compares an equation's right side, so an equation of numbers must
    also hold (its sides equal under math-verify) to count; `x = 12` is left to math-verify."""
    import sympy
    from math_verify import verify

    if not isinstance(value, sympy.Eq) or value.free_symbols:
        return False
    return not verify(value.lhs, value.rhs, timeout_seconds=None)


class MathAnswerVerifier(Verifier):
    """The last boxed answer (or `Answer:` line) equals the seed's `answer` under math-verify."""

    name = "math_answer"
    Options = MathAnswerOptions
    needs = ("answer",)
    description = ("the final answer only (the last `\\boxed{}`, `Answer:` line or stated \"The answer is N\"), "
                   "equivalent to the seed's answer under math-verify; not the working")

    def verify(self, claim: Claim) -> Verdict:
        from math_verify import verify

        expected_raw = claim.seed.get("answer")
        expected_text = expected_raw if isinstance(expected_raw, str) else \
            format(Decimal(repr(expected_raw)), "f") if isinstance(expected_raw, float) else repr(expected_raw)
        if isinstance(expected_raw, bool) or not isinstance(expected_raw, (str, int, float)):
            return Verdict(False, f"unparseable_expected: {short(expected_text)}", {"expected": expected_text})
        extracted, source = final_answer(claim.response or "")
        details: dict[str, Any] = {"extracted": extracted, "source": source, "expected": expected_text}
        if source == "none":
            return Verdict(False, "no_final_answer", details)
        if source == "answer_not_last":
            return Verdict(False, "no_final_answer: text after the Answer: line", details)
        if source in NO_ANSWER_NOTES:
            details["extracted"] = None
            return Verdict(False, f"no_final_answer: {NO_ANSWER_NOTES[source]} ({extracted})", details)
        if extracted is None:
            return Verdict(False, "unparseable_answer: unclosed \\boxed{", details)
        extracted = clean(extracted)
        details["extracted"] = short(extracted, MAX_ANSWER_CHARS)
        if not extracted:
            return Verdict(False, "no_final_answer", details)
        got, why = parse_answer(extracted)
        if got is None:
            return Verdict(False, f"unparseable_answer: {why}", details)
        gold, why = parse_answer(clean(str(expected_text)))
        if gold is None:
            return Verdict(False, f"unparseable_expected: {why}", details)
        if false_equation(got):
            return Verdict(False, f"wrong_answer: got {short(extracted, 40)} (a false equation), expected "
                                  f"{short(expected_text, 40)}", details)
        if verify(gold, got, timeout_seconds=None):
            return Verdict(True, "ok", details)
        return Verdict(False, f"wrong_answer: got {short(extracted, 40)}, expected {short(expected_text, 40)}",
                       details)
