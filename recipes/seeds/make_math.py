"""Write recipes/seeds/math.jsonl: grade-school arithmetic word problems with exact answers.

Run `python recipes/seeds/make_math.py` (deterministic: a fixed random seed, no dependencies);
its output is committed. Each problem takes one or two operations on small numbers, so a
135M model solves some of them. A seed row holds:

- `question`: the word problem (the prompt's only variable);
- `answer`: the exact answer as a plain string ("42", "7.5"), computed with `Fraction`;
- `template` and `numbers`: which template and which numbers made it, so a check can recompute
  the answer on its own without parsing the question (tests/test_verified_recipes.py does).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

OUT = Path(__file__).resolve().parent / "math.jsonl"
COUNT = 200
SEED = 20261201

NAMES = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena",
         "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wen", "Yusuf"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "stamps", "cards", "eggs"]
CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("basket", "baskets"), ("jar", "jars"), ("crate", "crates")]
PRICED = [("notebook", "notebooks"), ("ticket", "tickets"), ("sandwich", "sandwiches"), ("kite", "kites"),
          ("toy car", "toy cars"), ("pen", "pens")]
LENGTHS = [("meters", "rope"), ("feet", "ribbon"), ("centimeters", "string"), ("yards", "fabric")]


@dataclass(frozen=True)
class Template:
    """A word problem: how to draw its numbers, its text, and its exact answer."""

    name: str
    draw: Callable[[random.Random], dict[str, int]]
    text: Callable[[dict[str, int], dict[str, str]], str]
    solve: Callable[[dict[str, int]], Fraction]


def _pick(rng: random.Random) -> dict[str, str]:
    priced, priced_plural = rng.choice(PRICED)
    container, containers = rng.choice(CONTAINERS)
    unit, thing = rng.choice(LENGTHS)
    name, friend = rng.sample(NAMES, 2)
    return {"name": name, "friend": friend, "item": rng.choice(ITEMS), "priced": priced, "priced_plural": priced_plural,
            "container": container, "containers": containers, "unit": unit, "thing": thing}


TEMPLATES = [
    Template("add", lambda r: {"a": r.randint(2, 12), "b": r.randint(2, 9)},
             lambda n, w: f"{w['name']} has {n['a']} {w['item']}. {w['friend']} gives {w['name']} {n['b']} more "
                          f"{w['item']}. How many {w['item']} does {w['name']} have now?",
             lambda n: Fraction(n["a"] + n["b"])),
    Template("subtract", lambda r: (lambda a: {"a": a, "b": r.randint(1, a - 1)})(r.randint(5, 15)),
             lambda n, w: f"{w['name']} had {n['a']} {w['item']} and gave away {n['b']} of them. "
                          f"How many {w['item']} does {w['name']} have left?",
             lambda n: Fraction(n["a"] - n["b"])),
    Template("multiply", lambda r: {"a": r.randint(2, 6), "b": r.randint(2, 5)},
             lambda n, w: f"Each {w['container']} holds {n['a']} {w['item']}. {w['name']} has {n['b']} "
                          f"{w['containers']}. How many {w['item']} are there in all?",
             lambda n: Fraction(n["a"] * n["b"])),
    Template("divide", lambda r: (lambda q, k: {"a": q * k, "b": k})(r.randint(2, 6), r.randint(2, 4)),
             lambda n, w: f"{w['name']} shares {n['a']} {w['item']} equally among {n['b']} friends. "
                          f"How many {w['item']} does each friend get?",
             lambda n: Fraction(n["a"], n["b"])),
    Template("length", lambda r: (lambda a: {"a": a, "b": r.randint(1, a - 1)})(r.randint(5, 20)),
             lambda n, w: f"A piece of {w['thing']} is {n['a']} {w['unit']} long. {w['name']} cuts off "
                          f"{n['b']} {w['unit']}. How many {w['unit']} of {w['thing']} are left?",
             lambda n: Fraction(n["a"] - n["b"])),
    Template("price", lambda r: {"a": r.randint(2, 10), "b": r.randint(2, 5)},
             lambda n, w: f"One {w['priced']} costs {n['a']} dollars. "
                          f"How many dollars do {n['b']} {w['priced_plural']} cost?",
             lambda n: Fraction(n["a"] * n["b"])),
    Template("half_price", lambda r: {"a": r.randint(1, 4), "b": r.randint(2, 4)},
             lambda n, w: f"One {w['priced']} costs {plain(n['a'] + Fraction(1, 2))} dollars. How many dollars do "
                          f"{n['b']} {w['priced_plural']} cost?",
             lambda n: (n["a"] + Fraction(1, 2)) * n["b"]),
    Template("pages", lambda r: {"a": r.randint(2, 10), "b": r.randint(2, 5)},
             lambda n, w: f"{w['name']} reads {n['a']} pages every day. How many pages does {w['name']} "
                          f"read in {n['b']} days?",
             lambda n: Fraction(n["a"] * n["b"])),
    Template("buy_then_eat", lambda r: (lambda a, b: {"a": a, "b": b, "c": r.randint(1, a * b - 1)})(
                 r.randint(2, 3), r.randint(2, 4)),
             lambda n, w: f"{w['name']} buys {n['a']} {w['containers']} of {w['item']} with {n['b']} "
                          f"{w['item']} in each {w['container']}, then gives {n['c']} {w['item']} to "
                          f"{w['friend']}. How many {w['item']} does {w['name']} have left?",
             lambda n: Fraction(n["a"] * n["b"] - n["c"])),
    Template("add_three", lambda r: {"a": r.randint(1, 9), "b": r.randint(1, 9), "c": r.randint(1, 9)},
             lambda n, w: f"{w['name']} picks {n['a']} {w['item']} on Monday, {n['b']} on Tuesday and "
                          f"{n['c']} on Wednesday. How many {w['item']} did {w['name']} pick in total?",
             lambda n: Fraction(n["a"] + n["b"] + n["c"])),
]


def plain(value: Fraction) -> str:
    """An exact answer as a plain string: an integer, a terminating decimal, else a fraction."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        whole, rest = divmod(abs(value.numerator) * 10**12 // value.denominator, 10**12)
        sign = "-" if value < 0 else ""
        return f"{sign}{whole}.{str(rest).rjust(12, '0').rstrip('0')}"
    return f"{value.numerator}/{value.denominator}"


def problems(count: int = COUNT, seed: int = SEED) -> list[dict[str, object]]:
    """`count` distinct problems, templates taken in turn, numbers and words from one seeded RNG."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    seen: set[str] = set()
    while len(out) < count:
        template = TEMPLATES[len(out) % len(TEMPLATES)]
        numbers = template.draw(rng)
        question = template.text(numbers, _pick(rng))
        if question in seen:
            continue
        seen.add(question)
        out.append({"question": question, "answer": plain(template.solve(numbers)),
                    "template": template.name, "numbers": numbers})
    return out


def main() -> None:
    rows = problems()
    OUT.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {OUT}")


if __name__ == "__main__":
    main()
