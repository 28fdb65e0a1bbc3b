"""Arithmetic equations found in free text and checked exactly, for `math_working` (verify/math_working.py).

What is an equation: numbers joined by `+ - * / × ÷ · x` (`x` only between two numbers) and
parentheses, LaTeX `\\times`, `\\cdot`, `\\div` and `\\frac{a}{b}` of numbers, two or more sides
joined by `=`, on one line, with at least one operator. `$`, `€`, `£`, `¥` and LaTeX delimiters are
dropped; `1,000` is a thousand; a word after a number is its unit (`4 apples + 5 apples = 9 apples`)
and words in parentheses after it its label (`14 (total) - 3 (given away) = 11`); a `-` opening a
line before a space is a list bullet.
A chain holds when each side equals the next or reads as a running total: `2 + 3 = 5 + 1 = 6`
(2 + 3 is the 5 that `5 + 1` starts from).

What is left alone (neither true nor false, to keep false alarms off; `check_equation` gives None):
an equation with `^`, `%`, `!`, `²`, a glued letter (`2x = 6`) or a digit-joined `:`/`,` (`3:4`,
`4,5`) at its edge, since the text around it is math this parser does not read; one whose units
it cannot compare (`2 hours + 30 minutes = 150 minutes`); one next to a word that changes a number
(`10 divided by 2 = 5`, `1 dozen = 12`, `20% of 50 = 10`, `7 / 2 = 3 remainder 1`); one the text
ends on with a digit (it may be cut off at max_tokens: `500 * 4 = 2` of 2000); `4 = 12` (no
operator); a side this parser cannot read. `≈` is not `=`.

Generated text is hostile input: nothing is evaluated by Python. A tokenizer and a recursive-descent
parser over `+ - * / ( )` compute exact fractions; there is no power operator, numbers are at most
`MAX_DIGITS` digits, a side at most `MAX_TOKENS` tokens and `MAX_DEPTH` parentheses deep, so no
input makes the work large (`9**9**9**9` is two numbers with markdown between them, skipped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MAX_DIGITS = 30  # a longer number literal is not grade-school working; its equation is skipped
MAX_TOKENS = 64  # per side
MAX_DEPTH = 16  # parentheses
MAX_CHARS = 100_000  # of the response scanned (the tokenizer is linear; this bounds the lists)

# words that change the number next to them: an equation cut at one is not the one written
OPERATOR_WORDS = frozenset("""times plus minus by over per half halves twice thrice double triple
    squared cubed sqrt root percent dozen dozens hundred hundreds thousand thousands million millions
    billion billions remainder r rem mod modulo divided multiplied into from than""".split())
# `of` changes the number after it only after a number, a percent or a fraction word: `20% of 50 = 10`
# (but `a total of 5 + 3 = 8` is an equation)
OF_OPERATOR = re.compile(r"(?:[\d%]|\b(?:half|halves|thirds?|quarters?|fourths?|fifths?|tenths?|twice|double|"
                         r"triple|percent|dozens?))\s+of\s*$", re.IGNORECASE)

# words after an equation's last number that are not its unit (`3 * 4 = 12 in total`)
FUNCTION_WORDS = frozenset("""in each of for and to is are was so that which the a an at on with left more less
    total altogether all now""".split())
# LaTeX and Unicode spelled out in ASCII before tokenizing; `$`/delimiters become spaces
LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([\d.,\s]+)\}\s*\{\s*([\d.,\s]+)\}")
REPLACEMENTS = (
    (re.compile(r"\\(?:times|cdot|ast)(?![A-Za-z])|[×·∙✕✖]"), " * "),
    (re.compile(r"\\div(?![A-Za-z])|[÷∕]"), " / "),
    (re.compile(r"[−–]"), "-"),
    (re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])"), ""),
    (re.compile(r"\\[()\[\]]|\\\$|\$|\\[,;!: ]|[€£¥]"), " "),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\*\*|__"), " "),  # markdown emphasis (a power `3**2` becomes `3 2`, two numbers: skipped)
    (re.compile(r"(?<=\d)[ \t]*[xX][ \t]*(?=\d|\()"), " * "),  # 3 x 4, 3x4
)
TOKEN = re.compile(r"""
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)
  | (?P<op>[-+*/])
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<eq>=)
  | (?P<nl>\n)
  | (?P<ws>[ \t\r\f\v]+)
  | (?P<word>[A-Za-z]+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
# glued to an equation's edge (no space between), these may close or open it; anything else glued
# (`^`, `%`, `!`, a letter, `:` or `,` after a digit) means the text goes on as math we do not read
CLEAN_GLUE_BEFORE = frozenset("([{\"'`*")
CLEAN_GLUE_AFTER = frozenset(".,;:?)]}\"'`*")
EDGE_NEVER = frozenset("^%!²³°√<>≈~_|&#@\\")  # next to an edge, even after a space: skip


@dataclass(frozen=True)
class Tolerance:
    """When two sides agree: exactly, within `relative`, or (`rounding`) one side written as a decimal
    with d digits is the other rounded to d digits (`10 / 3 = 3.33`)."""

    rounding: bool = True
    relative: float = 0.0


@dataclass
class Tok:
    kind: str  # num | op | lp | rp | eq
    text: str
    start: int
    end: int
    unit: str = ""  # the word after a number, lower case, a plural `s` dropped


def normalize(text: str) -> str:
    """ASCII operators, `\\frac{a}{b}` as `((a)/(b))`, no currency signs or math delimiters."""
    text = LATEX_FRAC.sub(lambda m: f"(({m.group(1)})/({m.group(2)}))", text)
    for pattern, repl in REPLACEMENTS:
        text = pattern.sub(repl, text)
    return text


def unit_of(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def label_paren(raw: list[tuple[str | None, str, int, int]], i: int) -> bool:
    """A `(` before a word or a `)` after one: parentheses around words, not around numbers."""
    step = 1 if raw[i][0] == "lp" else -1
    j = i + step
    if 0 <= j < len(raw) and raw[j][0] == "ws":
        j += step
    return 0 <= j < len(raw) and raw[j][0] == "word"


def label_end(raw: list[tuple[str | None, str, int, int]], i: int) -> int | None:
    """Where the `)` closing the label that opens at `raw[i]` is: words and spaces only, a few."""
    for j in range(i + 1, min(i + 12, len(raw))):
        if raw[j][0] == "rp":
            return j
        if raw[j][0] not in ("word", "ws"):
            return None
    return None


def tokenize(text: str) -> list[Tok | str]:
    """Tokens; a break (a word that is not a unit, a newline, any other character) is a string
    holding what broke the run ('' for a newline)."""
    raw = [(m.lastgroup, m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]
    out: list[Tok | str] = []
    i = 0
    while i < len(raw):
        kind, value, start, end = raw[i]
        assert kind is not None  # TOKEN is an alternation of named groups: every match names one
        if kind == "ws":
            i += 1
            continue
        if kind == "word":
            prev = out[-1] if out else None
            nxt = next((r for r in raw[i + 1:i + 3] if r[0] != "ws"), None)  # whitespace is one token
            # a unit: right after a number (same line) and before an operator, `=` or `)`
            if isinstance(prev, Tok) and prev.kind == "num" and not prev.unit and nxt is not None \
                    and nxt[0] in ("op", "eq", "rp") and value.lower() not in OPERATOR_WORDS:
                prev.unit = unit_of(value)
                i += 1
                continue
            if isinstance(prev, Tok) and prev.kind == "num" and not prev.unit:
                prev.unit = unit_of(value)  # the last number's unit: kept, and the run ends
            out.append(value.lower())
        elif kind in ("nl", "other"):
            out.append("" if kind == "nl" else value)
        elif kind in ("lp", "rp") and label_paren(raw, i):
            close = label_end(raw, i) if kind == "lp" and out and isinstance(out[-1], Tok) and out[-1].kind == "num" \
                else None
            if close is not None:  # `13 (total) - 1 (sticker) = 12`: a number's label, read past
                i = close + 1
                continue
            out.append(value)  # `= 7 (a list bullet)`: words in parentheses end the run
        else:
            out.append(Tok(kind, value, start, end))
        i += 1
    return out


def runs(tokens: list[Tok | str]) -> list[tuple[list[Tok], Any, Any]]:
    """Maximal runs of number/operator/paren/`=` tokens with `=` in them, and the break on each side."""
    found: list[tuple[list[Tok], Any, Any]] = []
    current: list[Tok] = []
    before: Any = None
    for token in [*tokens, None]:
        if isinstance(token, Tok):
            current.append(token)
            continue
        if current and any(t.kind == "eq" for t in current):
            found.append((current, before, token))
        current, before = [], token
    return found


class Parser:
    """Recursive descent over `+ - * / ( )` and unary minus, exact with Fraction; no eval."""

    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens, self.i, self.depth, self.ops = tokens, 0, 0, 0

    def parse(self) -> Fraction | None:
        """The side's value; None when it is not an expression this parser reads (or 1/0 → ZeroDivisionError)."""
        if not self.tokens or len(self.tokens) > MAX_TOKENS:
            return None
        value = self.expr()
        return value if value is not None and self.i == len(self.tokens) else None

    def peek(self) -> Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expr(self) -> Fraction | None:
        value = self.term()
        while value is not None and (t := self.peek()) is not None and t.kind == "op" and t.text in "+-":
            self.i += 1
            self.ops += 1
            right = self.term()
            if right is None:
                return None
            value = value + right if t.text == "+" else value - right
        return value

    def term(self) -> Fraction | None:
        value = self.factor()
        while value is not None and (t := self.peek()) is not None and t.kind == "op" and t.text in "*/":
            self.i += 1
            self.ops += 1
            right = self.factor()
            if right is None:
                return None
            value = value * right if t.text == "*" else value / right  # ZeroDivisionError: the caller's
        return value

    def factor(self) -> Fraction | None:
        t = self.peek()
        if t is None:
            return None
        if t.kind == "op" and t.text == "-":
            self.i += 1
            inner = self.factor()
            return -inner if inner is not None else None
        if t.kind == "num":
            self.i += 1
            digits = t.text.replace(",", "")
            return Fraction(digits) if len(digits) <= MAX_DIGITS else None
        if t.kind == "lp":
            if self.depth >= MAX_DEPTH:
                return None
            self.i += 1
            self.depth += 1
            value = self.expr()
            self.depth -= 1
            if value is None or (r := self.peek()) is None or r.kind != "rp":
                return None
            self.i += 1
            return value
        return None


def decimals(side: list[Tok]) -> int | None:
    """Digits after the point when the side is one decimal number (`3.33` → 2), else None."""
    if len(side) == 1 and side[0].kind == "num" and "." in side[0].text:
        return len(side[0].text.split(".")[1])
    return None


def agree(a: Fraction, b: Fraction, a_side: list[Tok], b_side: list[Tok], tolerance: Tolerance) -> bool:
    """Equal, or within the relative tolerance, or one side the other rounded to its written digits."""
    if a == b:
        return True
    if tolerance.relative and abs(a - b) <= Fraction(tolerance.relative) * max(abs(a), abs(b)):
        return True
    if tolerance.rounding:
        for value, side in ((b, b_side), (a, a_side)):
            d = decimals(side)
            other = a if value is b else b
            if d is not None and abs(other - value) <= Fraction(1, 2 * 10 ** d):
                return True
    return False


def edge_is_clean(before: Any, after: Any, tokens: list[Tok], text: str) -> bool:
    """False when the run is cut out of math it does not cover (`2^3 + 1 = 9`, `3:4 = 0.75`,
    `10 divided by 2 = 5`, `1 dozen = 12`, `7 / 2 = 3 remainder 1`)."""
    start, end = tokens[0].start, tokens[-1].end
    for neighbour in (before, after):
        if isinstance(neighbour, str) and (neighbour in OPERATOR_WORDS or neighbour in EDGE_NEVER):
            return False
    if OF_OPERATOR.search(text[max(0, start - 40):start]):
        return False
    if start > 0 and not text[start - 1].isspace():
        glued = text[start - 1]
        if glued not in CLEAN_GLUE_BEFORE and not (glued in ".,;:?" and (start < 2 or not text[start - 2].isdigit())):
            return False
    if end < len(text) and not text[end].isspace():
        glued = text[end]
        if glued not in CLEAN_GLUE_AFTER or (glued in ".,:" and end + 1 < len(text) and text[end + 1].isalnum()):
            return False
    # a leading minus is a sign only glued to its number (`-3 + 5 = 2`); `) - 1 = 12` was cut from more
    return tokens[0].kind in ("num", "lp") or (tokens[0].kind == "op" and tokens[0].text == "-"
                                               and len(tokens) > 1 and tokens[1].start == tokens[0].end)


def split_sides(tokens: list[Tok]) -> list[list[Tok]]:
    sides: list[list[Tok]] = [[]]
    for t in tokens:
        if t.kind == "eq":
            sides.append([])
        else:
            sides[-1].append(t)
    return sides


def units_agree(tokens: list[Tok]) -> bool:
    """Whether the numbers' units let the numbers be compared as written: a sum or difference in one
    unit (`4 apples + 5 apples = 9 apples`, `6 - 2 = 4 books`), a product or quotient whose result
    is in a unit of its factors or in none (`4 boxes * 6 stickers = 24 stickers`); not
    `2 hours + 30 minutes = 150 minutes` or `3 feet * 2 = 2 yards`, conversions this check cannot do."""
    nums = [t for t in tokens if t.kind == "num"]
    last = nums[-1] if nums else None
    units = [t.unit for t in nums if t.unit and not (t is last and t.unit in FUNCTION_WORDS)]
    if any(len(u) == 1 for u in units):
        return False  # `2x + 3 = 7`: a variable, not a unit
    if any(t.kind == "op" and t.text in "+-" for t in tokens):
        return len(set(units)) <= 1
    others = {t.unit for t in nums[:-1] if t.unit}
    final = last.unit if last is not None and last.unit not in FUNCTION_WORDS else ""
    return not (final and others and final not in others)


def check_equation(tokens: list[Tok], tolerance: Tolerance = Tolerance()) -> bool | None:
    """True/False when the equation holds or not; None when it is not one this verifier reads."""
    sides = split_sides(tokens)
    if len(sides) < 2 or any(not s for s in sides):
        return None
    if not units_agree(tokens):
        return None
    values: list[Fraction] = []
    parsers: list[Parser] = []
    for side in sides:
        parser = Parser(side)
        try:
            value = parser.parse()
        except ZeroDivisionError:
            return False
        if value is None:
            return None
        values.append(value)
        parsers.append(parser)
    if not any(p.ops for p in parsers):
        return None  # `4 = 12`: no arithmetic in it (a label, a cut conversion), nothing to check
    for k in range(len(sides) - 1):
        if agree(values[k], values[k + 1], sides[k], sides[k + 1], tolerance):
            continue
        # a running total: `2 + 3 = 5 + 1 = 6`, the next side starts from this side's value
        head = sides[k + 1][0]
        if k + 2 < len(sides) and parsers[k + 1].ops and head.kind == "num" and \
                agree(values[k], Fraction(head.text.replace(",", "")), sides[k], [head], tolerance):
            continue
        return False
    return True


def equations(response: str) -> list[tuple[str, list[Tok], bool]]:
    """Each equation run in `response` as (its text, tokens, readable: edges clean)."""
    text = normalize(response[:MAX_CHARS])
    text_end = len(text.rstrip()) if response.rstrip()[-1:].isdigit() else len(text) + 1
    out = []
    for tokens, before, after in runs(tokenize(text)):
        if before in (None, "") and tokens[0].kind == "op" and len(tokens) > 1 and \
                text[tokens[0].end:tokens[0].end + 1].isspace():
            tokens = tokens[1:]  # a list bullet (`- 3 + 4 = 7`), not a minus
        if tokens[0].kind == "eq" and isinstance(before, str) and before.isalpha() and before not in OPERATOR_WORDS:
            tokens = tokens[1:]  # `x = 5 + 2 = 7`, `total = 3 + 4`: the named side is not arithmetic
        if not tokens:
            continue
        # an equation the response ends on may be cut off at max_tokens (`500 * 4 = 2` of 2000)
        readable = tokens[-1].end < text_end and edge_is_clean(before, after, tokens, text)
        out.append((text[tokens[0].start:tokens[-1].end], tokens, readable))
    return out
