"""`math_working`: the working of a math solution holds up, not only its final answer (`math_answer`
checks that). A deterministic check, three parts, the first failure fails the row:

- `false_step: <equation>`: an arithmetic equation in the working is false (`7 + 5 = 13` before
  "Answer: 12"). Which equations are read and how they are checked, exactly and without eval:
  verify/arithmetic.py. Equations it cannot read are skipped (`details.skipped`), never failed.
- `self_comparison: <text>`: a name is compared with itself ("Yusuf has 9 - 5 = 4 more stamps than
  Yusuf"); option `self_comparison`.
- `contradicts_problem: <sentence>`: a sentence of the working says a given of the problem again,
  word for word but with another number ("A toy car costs 4 dollars." where the problem says "One
  toy car costs 4.5 dollars."); sentences about a quantity the problem changes ("Ben has 6 books",
  then "Ben has 8 books") and questions are not givens. Option `restated_givens`; the problem is the
  claim's prompt (else the seed's `question`).

It checks arithmetic and restatements, not meaning: "Ben has 6 - 2 = 4 books" where the problem gave
Ben 2 more is a true equation and passes, as do a wrong unit ("5 x 3 = 15 pens" for dollars) and a
nonsense line ("A basket is 3 times a basket."). Measured on 112 rows with a right final answer from
two runs of recipes/math.yaml (SmolLM2-135M, sampling seeds 42 and 7), each read and labelled by an
agent: 34 had a flawed working, it caught 8 of them (3 false steps, 3 restated givens, 2 self
comparisons) and failed none of the 78 sound ones. On all 800 generated rows of those runs every
`false_step` it reported was a false equation on reading.
"""

from __future__ import annotations

import re
from fractions import Fraction

from pydantic import Field

from synthfactory.verify.arithmetic import MAX_CHARS, MAX_DIGITS, Tolerance, check_equation, equations
from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions

SNIPPET = 60
# restated givens: a problem sentence with a number, said again in the working with another number
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
WORD_OR_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|[a-z]+")
SKELETON_DROP = frozenset("a an the one so then thus therefore and but".split())
# a sentence with one of these states a quantity that the problem changes (`Ben has 6 books` → `Ben has 8 books`)
STATE_WORDS = frozenset("has have had is are was were left now remain remains".split())
MIN_SKELETON_WORDS = 3
# `Yusuf has 9 - 5 = 4 more stamps than Yusuf`: a name compared with itself in one sentence (not `than Tom's`)
SELF_COMPARISON = re.compile(r"\b([A-Z][a-z]{1,30})\b[^.!?\n]{0,200}?\bthan\s+\1\b(?!['’]s)")


class MathWorkingOptions(VerifierOptions):
    restated_givens: bool = Field(default=True, description="a sentence that restates one of the problem's "
                                                            "givens with another number fails the row")
    self_comparison: bool = Field(default=True, description="a name compared with itself (`Yusuf has 4 more "
                                                            "stamps than Yusuf`) fails the row")
    rounding: bool = Field(default=True, description="a decimal side may be the other rounded to its digits "
                                                     "(10 / 3 = 3.33)")
    rel_tolerance: float = Field(default=0.0, ge=0, le=0.1,
                                 description="sides also agree within this relative difference (0: exact)")


def short(text: str, limit: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def skeleton(sentence: str) -> tuple[tuple[str, ...], tuple[Fraction, ...]]:
    """A sentence's words with its numbers as `#` (articles and `so`/`then` dropped), and its numbers."""
    words = [w for w in WORD_OR_NUMBER.findall(sentence.lower()) if w not in SKELETON_DROP]
    numbers = tuple(Fraction(w.replace(",", "")) for w in words if w[0].isdigit() and len(w) <= MAX_DIGITS)
    return tuple("#" if w[0].isdigit() else w for w in words), numbers


def contradicted_given(problem: str, working: str) -> tuple[str, str] | None:
    """(the working's sentence, the problem's) when the working says a given of the problem again,
    word for word but with another number ("A toy car costs 4 dollars." for "One toy car costs 4.5
    dollars."); questions and sentences about a quantity that changes (has, is, left) are not givens."""
    givens: dict[tuple[str, ...], tuple[str, tuple[Fraction, ...]]] = {}
    for sentence in SENTENCE.split(problem[:MAX_CHARS]):
        words, numbers = skeleton(sentence)
        if numbers and "?" not in sentence and not STATE_WORDS & set(words) and \
                sum(w != "#" for w in words) >= MIN_SKELETON_WORDS:
            givens.setdefault(words, (sentence.strip(), numbers))
    if not givens:
        return None
    for sentence in SENTENCE.split(working[:MAX_CHARS]):
        words, numbers = skeleton(sentence)
        given = givens.get(words)
        if given is not None and numbers != given[1]:
            return sentence.strip(), given[0]
    return None


class MathWorkingVerifier(Verifier):
    """Every equation the working writes is true, no name is compared with itself and no given of
    the problem is restated with another number; the first failure fails the row."""

    name = "math_working"
    Options = MathWorkingOptions
    needs = ()
    options: MathWorkingOptions
    description = ("every equation in the working is true (exact + - * /); no given of the problem restated "
                   "with another number, no name compared with itself; not whether the reasoning makes sense")

    def verify(self, claim: Claim) -> Verdict:
        tolerance = Tolerance(rounding=self.options.rounding, relative=self.options.rel_tolerance)
        checked = skipped = 0
        for text, tokens, clean in equations(claim.response or ""):
            verdict = check_equation(tokens, tolerance) if clean else None
            if verdict is None:
                skipped += 1
                continue
            checked += 1
            if not verdict:
                return Verdict(False, f"false_step: {short(text)}",
                               {"equation": short(text, 200), "checked": checked, "skipped": skipped})
        if self.options.self_comparison and (nonsense := SELF_COMPARISON.search(claim.response or "")):
            return Verdict(False, f"self_comparison: {short(nonsense.group(0))}",
                           {"sentence": short(nonsense.group(0), 200), "checked": checked, "skipped": skipped})
        problem = claim.prompt or str(claim.seed.get("question") or "")
        if self.options.restated_givens and problem:
            contradiction = contradicted_given(problem, claim.response or "")
            if contradiction is not None:
                said, given = contradiction
                return Verdict(False, f"contradicts_problem: {short(said, 50)} (the problem: {short(given, 50)})",
                               {"sentence": short(said, 200), "given": short(given, 200), "checked": checked,
                                "skipped": skipped})
        return Verdict(True, "ok", {"checked": checked, "skipped": skipped})
