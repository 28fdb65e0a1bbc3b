"""Near misses of a seed's reference solution, and how many of them the seed's tests reject.

A code seed's tests are only as good as the wrong answers they catch: a model's near miss (`<` for
`<=`, an off-by-one bound, a dropped `else`) that passes them is published as verified. `mutants`
makes such near misses of the reference with `ast` (deterministic: the same reference gives the
same mutants in the same order); `mutation_scores` runs each through the recipe's verifier and
counts a mutant killed when its verdict fails. `synthfactory seeds check RECIPE` prints the scores.

Some mutants are equivalent to the reference (`n < 0` for `n <= 0` in `abs`): no test can kill
them, so a sound seed scores below 1.0. Results are cached per (reference, tests, this module's
source, verifier options) under the user cache folder: a second check of unchanged seeds is fast.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from synthfactory.cache import cache_root
from synthfactory.model.lineage import stable_hash
from synthfactory.verify.base import Claim, Verifier

# any change to the operators changes this module's source, hence every cache key
MUTATION_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
SHOWN_CHARS = 60

COMPARE_FLIPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
ARITHMETIC_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div,), ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Mod, ast.Div), ast.Mod: (ast.FloorDiv,), ast.Pow: (ast.Mult,),
    ast.LShift: (ast.RShift,), ast.RShift: (ast.LShift,), ast.BitAnd: (ast.BitOr,), ast.BitOr: (ast.BitAnd,),
    ast.BitXor: (ast.BitOr,),
}
RETURN_CONSTANTS = ("None", "0")  # `return <expr>` -> each of these, and the empty value of its evident type
EMPTY_OF: dict[type, str] = {ast.List: "[]", ast.ListComp: "[]", ast.Tuple: "()", ast.Dict: "{}",
                             ast.DictComp: "{}", ast.Set: "set()", ast.SetComp: "set()", ast.JoinedStr: "''"}

Edit = Callable[[ast.AST, dict[ast.AST, ast.AST]], str]  # mutates a node in place; says what it did


@dataclass(frozen=True)
class Mutant:
    """One near miss: what changed (`line 3: n < 0 -> n <= 0`) and the whole mutated source."""

    description: str
    source: str


@dataclass(frozen=True)
class MutationReport:
    """A seed's mutants: how many its tests killed, and what the survivors changed. `broken`: the
    reference itself failed (the verifier's reason); its score is then 0."""

    name: str
    killed: int
    total: int
    survivors: tuple[str, ...] = ()
    broken: str | None = None
    cached: bool = False

    @property
    def score(self) -> float | None:
        """Killed share of the mutants; 0 for a broken seed, None when nothing could be mutated."""
        if self.broken is not None:
            return 0.0
        return self.killed / self.total if self.total else None


def mutants(reference: str) -> list[Mutant]:
    """Every near miss of `reference`, in source order; none equal to it or to an earlier one.

    One change each: a comparison flipped (`<`/`<=`, `>`/`>=`, `==`/`!=`, `in`/`not in`,
    `is`/`is not`); an integer constant off by one (n+1, n-1); an arithmetic operator swapped (`+`/`-`,
    `*` to `/`, `/` to `*` or `//`, `//` to `%` or `/`, ...); `and`/`or` swapped; a condition negated
    or its `not` dropped; an `if`'s body or `else` dropped, a conditional expression reduced to one
    branch; `return <expr>` returning the function's first argument, None, 0, or the empty value of
    the expression's evident type (`[]` for a list display, `''` for a string, ...)."""
    tree = ast.parse(reference)
    seen = {ast.unparse(tree)}
    parents = _parents(tree)
    found = []
    for index, node in enumerate(_preorder(tree)):
        for edit in _edits(node):
            copy = ast.parse(reference)
            nodes = _preorder(copy)
            description = edit(nodes[index], _parents(copy))
            source = ast.unparse(ast.fix_missing_locations(copy))
            if source in seen:
                continue
            seen.add(source)
            try:
                compile(source, "<mutant>", "exec")
            except (SyntaxError, ValueError):
                continue
            found.append(Mutant(f"line {_line(node, parents)}: {description}", source))
    return found


def mutation_score(seed: Mapping[str, Any], reference: str, verifier: Verifier,
                   cache: Path | None = None) -> MutationReport:
    """One seed's report (see `mutation_scores`)."""
    return mutation_scores([(seed, reference)], verifier, cache)[0]


def mutation_scores(items: Sequence[tuple[Mapping[str, Any], str]], verifier: Verifier,
                    cache: Path | None = None) -> list[MutationReport]:
    """A report per (seed, reference): the reference and every mutant of every uncached seed go
    through `verifier.verify_many` in one batch (parallel across seeds). `cache`: a folder for
    results (default: none); a broken reference is never cached (it may be a passing fault)."""
    reports: list[MutationReport | None] = [None] * len(items)
    claims: list[Claim] = []
    pending: list[tuple[int, list[Mutant], str]] = []
    for k, (seed, reference) in enumerate(items):
        name = str(seed.get("name") or f"seed {k}")
        key = _cache_key(seed, reference, verifier)
        kept = _read_cached(cache, key, name)
        if kept is not None:
            reports[k] = kept
            continue
        try:
            found = mutants(reference)
        except SyntaxError as exc:
            reports[k] = MutationReport(name, 0, 0, broken=f"reference: syntax_error: line {exc.lineno}")
            continue
        pending.append((k, found, key))
        claims.extend(_claim(seed, source) for source in [reference, *(m.source for m in found)])
    verdicts = iter(verifier.verify_many(claims))
    for k, found, key in pending:
        name = str(items[k][0].get("name") or f"seed {k}")
        reference_verdict = next(verdicts)
        results = [next(verdicts) for _ in found]
        if not reference_verdict.passed:
            reports[k] = MutationReport(name, 0, len(found), broken=f"reference: {reference_verdict.reason}")
            continue
        survivors = tuple(m.description for m, v in zip(found, results, strict=True) if v.passed)
        report = MutationReport(name, len(found) - len(survivors), len(found), survivors)
        reports[k] = report
        _write_cached(cache, key, report)
    return [r for r in reports if r is not None]


def default_cache() -> Path:
    """`{XDG_CACHE_HOME or ~/.cache}/synthfactory/mutation`."""
    return cache_root("mutation")


# -- the operators ---------------------------------------------------------------------------------
def _edits(node: ast.AST) -> list[Edit]:
    """The mutations that apply to `node` (each is applied to the same node of a fresh parse)."""
    edits: list[Edit] = []
    if isinstance(node, ast.Compare):
        edits += [partial(_flip_compare, j) for j, op in enumerate(node.ops) if type(op) in COMPARE_FLIPS]
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        edits += [partial(_swap_operator, new) for new in ARITHMETIC_SWAPS.get(type(node.op), ())]
    elif isinstance(node, ast.BoolOp):
        edits.append(_swap_bool)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        edits += [partial(_shift_constant, 1), partial(_shift_constant, -1)]
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        edits.append(_drop_not)
    if isinstance(node, (ast.If, ast.While, ast.IfExp)) and not _is_not(node.test):
        edits.append(_negate_test)
    elif isinstance(node, ast.comprehension):
        edits += [partial(_negate_filter, j) for j, test in enumerate(node.ifs) if not _is_not(test)]
    if isinstance(node, ast.If):
        edits.append(_drop_body)
        if node.orelse:
            edits.append(_drop_else)
    elif isinstance(node, ast.IfExp):
        edits += [partial(_keep_branch, "body"), partial(_keep_branch, "orelse")]
    elif isinstance(node, ast.Return) and node.value is not None:
        edits.append(_return_first_argument)
        empty = _empty_of(node.value)
        edits += [partial(_return_constant, text) for text in RETURN_CONSTANTS + ((empty,) if empty else ())]
    return edits


def _flip_compare(j: int, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.Compare)
    before = _shown(node)
    node.ops[j] = COMPARE_FLIPS[type(node.ops[j])]()
    return f"{before} -> {_shown(node)}"


def _swap_operator(new: type, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, (ast.BinOp, ast.AugAssign))
    before = _shown(node)
    node.op = new()
    return f"{before} -> {_shown(node)}"


def _swap_bool(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.BoolOp)
    before = _shown(node)
    node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    return f"{before} -> {_shown(node)}"


def _shift_constant(delta: int, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.Constant) and type(node.value) is int  # `_edits` offers it for int constants only
    shown = parents.get(node, node)  # `k = 2 -> k = 3`, `n % 2 -> n % 3`: the constant in its place
    if isinstance(shown, ast.Slice):  # `items[1:] -> items[2:]`
        shown = parents.get(shown, shown)
    if isinstance(shown, (ast.arguments, ast.comprehension)) or hasattr(shown, "body"):
        shown = node
    before = _shown(shown)
    node.value += delta
    return f"{before} -> {_shown(shown)}"


def _drop_not(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.UnaryOp)
    _replace(parents[node], node, node.operand)
    return f"{_shown(node)} -> {_shown(node.operand)}"


def _negate_test(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, (ast.If, ast.While, ast.IfExp))
    before = _shown(node.test)
    node.test = ast.UnaryOp(ast.Not(), node.test)
    return f"{before} -> {_shown(node.test)}"


def _negate_filter(j: int, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.comprehension)
    before = _shown(node.ifs[j])
    node.ifs[j] = ast.UnaryOp(ast.Not(), node.ifs[j])
    return f"{before} -> {_shown(node.ifs[j])}"


def _drop_body(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.If)
    node.body = [ast.Pass()]
    return f"if {_shown(node.test)}: body dropped"


def _drop_else(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.If)
    node.orelse = []
    return f"if {_shown(node.test)}: else dropped"


def _keep_branch(branch: str, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.IfExp)
    kept = getattr(node, branch)
    _replace(parents[node], node, kept)
    return f"{_shown(node)} -> {_shown(kept)}"


def _return_first_argument(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.Return) and node.value is not None
    function = parents.get(node)
    while function is not None and not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        function = parents.get(function)
    arguments = function.args.posonlyargs + function.args.args if function is not None else []
    if not arguments:
        return "unchanged"  # the same source as the reference: dropped
    before = _shown(node)
    node.value = ast.Name(arguments[0].arg, ast.Load())
    return f"{before} -> {_shown(node)}"


def _return_constant(text: str, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    assert isinstance(node, ast.Return)
    before = _shown(node)
    node.value = ast.parse(text, mode="eval").body
    return f"{before} -> {_shown(node)}"


# -- helpers ---------------------------------------------------------------------------------------
def _preorder(tree: ast.AST) -> list[ast.AST]:
    """Every node, parents before children, children in field order."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


def _line(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> int | str:
    """The node's line, else its nearest ancestor's (a comprehension has none)."""
    current: ast.AST | None = node
    while current is not None and not hasattr(current, "lineno"):
        current = parents.get(current)
    return getattr(current, "lineno", "?")


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _replace(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return
        if isinstance(value, list) and any(item is old for item in value):
            value[[id(item) for item in value].index(id(old))] = new
            return


def _empty_of(value: ast.expr) -> str | None:
    """The empty value of an expression's evident type: a display or comprehension, a string
    literal or f-string, `'sep'.join(...)`, str(...); None when the type is not evident."""
    if type(value) in EMPTY_OF:
        return EMPTY_OF[type(value)]
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return "''"
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Name) and func.id in ("str", "list", "dict", "set", "tuple", "sorted"):
            return {"str": "''", "dict": "{}", "set": "set()", "tuple": "()"}.get(func.id, "[]")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Constant) \
                and isinstance(func.value.value, str):  # 'sep'.join(...)
            return "''"
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):  # `a + b`: the type of either side
        return _empty_of(value.left) or _empty_of(value.right)
    return None


def _is_not(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)


def _shown(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _claim(seed: Mapping[str, Any], source: str) -> Claim:
    return Claim(response=f"```python\n{source}\n```", seed=seed)


# -- the cache -------------------------------------------------------------------------------------
def _cache_key(seed: Mapping[str, Any], reference: str, verifier: Verifier) -> str:
    options = verifier.options.model_dump(mode="json") if hasattr(verifier.options, "model_dump") else {}
    checks = {field: seed.get(field) for field in ("tests", "io_tests")}
    return stable_hash(reference, checks, MUTATION_VERSION, getattr(verifier, "name", ""), options, length=32)


def _read_cached(cache: Path | None, key: str, name: str) -> MutationReport | None:
    if cache is None:
        return None
    try:
        kept = json.loads((cache / f"{key}.json").read_text(encoding="utf-8"))
        return MutationReport(name, int(kept["killed"]), int(kept["total"]), tuple(map(str, kept["survivors"])),
                              cached=True)
    except (OSError, ValueError, KeyError, TypeError):  # absent, unreadable or torn: run it again
        return None


def _write_cached(cache: Path | None, key: str, report: MutationReport) -> None:
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial_file = cache / f"{key}.json.{os.getpid()}.tmp"
        partial_file.write_text(json.dumps({"killed": report.killed, "total": report.total,
                                            "survivors": list(report.survivors)}), encoding="utf-8")
        os.replace(partial_file, cache / f"{key}.json")
    except OSError:  # a read-only home: the check still works, only slower next time
        pass
