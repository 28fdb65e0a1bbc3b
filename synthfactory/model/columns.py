"""Declared columns: every column a published row has is declared by whoever adds it, and the
published table's schema is derived from those declarations, so nothing is dropped silently.

The base (`ROW_SCHEMA`) is what every row has: lineage, content and cost. On top of it each part
of a recipe's line declares what it adds (`Declared`): the method its content columns, each screen
what its `measure` returns, each verifier its batch pass rate, each judge what it adds, each stage
of the line what it adds itself. Keys a row carries on purpose without publishing them are
declared as `internal`. Who declares what is gathered from the registries by
`synthfactory.recipe.columns`; this module only combines the declarations.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from synthfactory.errors import RecipeError
from synthfactory.model.lineage import ROW_SCHEMA

BASE_OWNER = "the base row (lineage, content, cost)"

# keys every part of the line may put on a row that are never published
INTERNAL_KEYS: dict[str, str] = {
    "stage": "the stage that rejected or quarantined the row (quarantine records only)",
    "reason": "why the row was rejected or quarantined (quarantine records only)",
}


@dataclass(frozen=True)
class Declared:
    """The columns one part of a recipe's line adds to rows. `content`: a method's own columns,
    which share a name with nothing else (another part writing one would overwrite the method's)."""

    owner: str  # how an error names it: "method 'text'", "screen 'language'", "stage 'measure'"
    fields: tuple[pa.Field, ...] = ()
    internal: tuple[str, ...] = ()  # keys it puts on rows that are not published
    content: bool = False


class UndeclaredColumnError(ValueError):
    """A row reached publish with a key nobody declared: a bug in whatever added it."""


def verify_rate_column(name: str) -> str:
    """The batch column holding verifier `name`'s pass rate (passed / checked in the batch), which
    a GX suite gates like any batch metric (expect_column_min_to_be_between)."""
    return f"batch_verify_pass_rate_{name}"


def published_schema(declared: Sequence[Declared], base: pa.Schema = ROW_SCHEMA) -> pa.Schema:
    """The published table's schema: `base`, then every declared field in order (one field per
    name). A name declared with two Arrow types, or a method column any other part also declares
    (the base included), is a RecipeError naming both owners."""
    fields: dict[str, tuple[pa.Field, str, bool]] = {f.name: (f, BASE_OWNER, False) for f in base}
    for part in declared:
        for field in part.fields:
            if field.name not in fields:
                fields[field.name] = (field, part.owner, part.content)
                continue
            known, owner, content = fields[field.name]
            if not known.type.equals(field.type):
                raise RecipeError(f"column '{field.name}' is declared twice with different types: by {owner} "
                                  f"as {known.type} and by {part.owner} as {field.type}; rename one of them")
            if (content or part.content) and owner != part.owner:
                raise RecipeError(f"column '{field.name}' is declared by {owner} and by {part.owner}: one would "
                                  f"overwrite the other's values; rename the method's column")
    return pa.schema([field for field, _, _ in fields.values()])


def internal_keys(declared: Iterable[Declared]) -> frozenset[str]:
    """Every key rows of this line carry on purpose without publishing it."""
    return frozenset(INTERNAL_KEYS).union(*(part.internal for part in declared))


def check_declared(row: dict[str, Any], schema: pa.Schema, internal: Collection[str],
                   declared: Sequence[Declared] = (), where: str = "") -> None:
    """UndeclaredColumnError naming every key of `row` that is neither a column of `schema` nor
    internal, and the parts of the line that may have added it."""
    unknown = sorted(set(row) - set(schema.names) - set(internal))
    if unknown:
        owners = ", ".join(part.owner for part in declared) or "the recipe's line"
        raise UndeclaredColumnError(
            f"{'row ' + where + ' has' if where else 'a row has'} column(s) {', '.join(map(repr, unknown))} that "
            f"nothing in the line declares, so publishing would drop them: whichever of {owners} adds them must "
            f"declare them in its `columns` (or as `internal` if they are not for the table)")
