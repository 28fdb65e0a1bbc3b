"""The verifier interface: a check a row cannot fool (math equivalence, code run against tests,
claims found in a source), run in the `verify` stage after screening and before any judge.

A verifier is one module under `synthfactory/verify/` with a `Verifier` subclass, registered by
name in `synthfactory.registry.VERIFIERS`. A recipe declares it as
`verification: [{name, method, options}]`; `method` is the registered name, `options` are checked
against the verifier's own `Options` model when the recipe loads.

- `needs`: the seed fields it reads (`answer`, `tests|io_tests` for either, `source`): a recipe
  whose seeds lack one exits 2 with one line before any engine starts;
- `preflight()`: None, or one line why it cannot run here (python_tests without a sandbox): the run
  exits 2 with it before any engine starts;
- `verify_many(claims)`: one `Verdict` per claim, in order. CPU-heavy verifiers (code in a
  sandbox) run the claims in parallel; the default runs `verify` on each;
- `columns(name)`: the columns a verifier the recipe names `name` adds to the published table:
  its batch pass rate `batch_verify_pass_rate_<name>` (the measure stage writes it).

A `Verdict` is pass or fail, a short reason (`ok`, `no_final_answer`, `wrong_answer: ...`) and
JSON-able details. A failed row is quarantined as `verify_failed: <name>: <reason>` and the
verdicts of every verifier travel with the row as its `verification` lineage column (JSON).
Generated content is hostile input: a verifier never evaluates it outside a sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from synthfactory.model.columns import verify_rate_column


class VerifierOptions(BaseModel):
    """A verifier's options (`verification[].options`): strict, so a typo is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Claim:
    """What one verification checks: the response a row ships (the assistant's answer; one
    candidate of a preference row) and the seed's fields exactly as the seeds gave them."""

    response: str
    seed: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""


@dataclass(frozen=True)
class Verdict:
    """Pass or fail, the first cause of a failure (one short line), and details as JSON."""

    passed: bool
    reason: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "details": self.details}


class Verifier:
    """Base of every verifier; subclasses set `name`, `Options`, `needs` and `verify`."""

    name: ClassVar[str]
    Options: ClassVar[type[VerifierOptions]] = VerifierOptions
    needs: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(self, options: VerifierOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @classmethod
    def columns(cls, name: str) -> tuple[pa.Field, ...]:
        """The columns this verifier, named `name` in `verification`, adds to every published row:
        its pass rate over the batch, which a GX suite gates like any batch metric."""
        return (pa.field(verify_rate_column(name), pa.float64()),)

    def preflight(self) -> str | None:
        """None when this verifier can run here, else one line naming the fix (exit 2 at run start)."""
        return None

    def screens_seeds(self) -> bool:
        """Whether `weak_seeds` refuses any seed (the recipe asked for it)."""
        return False

    def weak_seeds(self, seeds: list[Mapping[str, Any]]) -> list[str | None]:
        """Per seed: None, or why its checks are too weak to trust (quarantined before generation)."""
        return [None] * len(seeds)

    def verify(self, claim: Claim) -> Verdict:
        raise NotImplementedError

    def verify_many(self, claims: list[Claim]) -> list[Verdict]:
        """One verdict per claim, in order (override to run them in parallel)."""
        return [self.verify(claim) for claim in claims]

    def missing(self, seed: Mapping[str, Any]) -> list[str]:
        """The fields this verifier needs that a seed lacks (empty strings and lists count as missing;
        a need "a|b" is met by either)."""
        return [" or ".join(need.split("|")) for need in self.needs
                if all(seed.get(name) in (None, "", []) for name in need.split("|"))]
