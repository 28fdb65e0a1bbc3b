"""Verify: checks a row cannot fool (math, code in the sandbox, grounding), before any judge.

It fills the base row's `verification` column (declared again here as what this stage writes);
each verifier declares its own batch pass-rate column (`Verifier.columns`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

import pyarrow as pa

from synthfactory.methods import Method
from synthfactory.model.batch import BatchState, with_reason
from synthfactory.run.stages.base import BatchWork, Stage
from synthfactory.verify.base import Claim, Verdict

if TYPE_CHECKING:
    from synthfactory.verify.base import Verifier


def verify_batch(state: BatchState, method: Method, verifiers: list[tuple[str, Verifier]]) -> BatchState:
    """Every verifier, in recipe order, over the claims of the batch's rows (one call per verifier,
    so a verifier runs them in parallel); a claim a verifier fails is checked no further. The
    method settles each row from its verdicts: a failure quarantines it as
    `verify_failed: <name>: <reason>` before any judge sees it; a seed lacking a field the
    verifier needs quarantines its rows as `<name>: missing_seed_field: <field>`. Every row that
    went through keeps its verdicts as `verification`; `verified` counts [checked, passed] claims
    per verifier (the batch's pass rates)."""
    if not verifiers:
        return replace(state, stage="verified")
    current = list(state.rows)  # never mutate the input: it may be a cached result
    claims = [method.verify_claims(row) for row in current]
    checks: list[list[dict[str, Verdict]]] = [[{} for _ in row_claims] for row_claims in claims]
    lacking: dict[int, str] = {}
    counts: dict[str, list[int]] = {}
    for name, verifier in verifiers:
        for i, row_claims in enumerate(claims):
            missing = verifier.missing(row_claims[0].seed) if row_claims and i not in lacking else []
            if missing:
                lacking[i] = f"{name}: missing_seed_field: {', '.join(missing)}"
        todo = [(i, k) for i, row_claims in enumerate(claims) if i not in lacking
                for k in range(len(row_claims)) if all(v.passed for v in checks[i][k].values())]
        verdicts = _verdicts(verifier, [claims[i][k] for i, k in todo])
        for (i, k), verdict in zip(todo, verdicts, strict=True):  # a verifier returns one verdict per claim
            checks[i][k][name] = verdict
        counts[name] = [len(todo), sum(v.passed for v in verdicts)]
    rows, quarantined = [], list(state.quarantined)
    for i, row in enumerate(current):
        row = {**row, "verification": _verification_json(checks[i], lacking.get(i))}
        settled = lacking[i] if i in lacking else method.settle_verified(row, checks[i])
        if isinstance(settled, str):
            quarantined.append(with_reason(row, "verify", f"verify_failed: {settled}"))
        else:
            rows.append(settled)
    return replace(state, stage="verified", rows=rows, quarantined=quarantined, verified=counts)

def _verdicts(verifier: Verifier, claims: list[Claim]) -> list[Verdict]:
    """The verifier's verdicts; one that raises on some claim (generated text is hostile input)
    fails that claim with the error as its reason instead of failing the batch."""
    if not claims:
        return []
    try:
        return list(verifier.verify_many(claims))
    except Exception:  # find the claim that breaks it, one at a time
        out = []
        for claim in claims:
            try:
                out.append(verifier.verify(claim))
            except Exception as exc:  # a reason on the row, not a crashed run
                out.append(Verdict(False, f"verifier_error: {type(exc).__name__}: {str(exc)[:200]}"))
        return out

def _verification_json(checks: list[dict[str, Verdict]], lacking: str | None) -> str:
    """The `verification` column: {name: {passed, reason, details}} for a row's one claim; for
    several (candidates), each verifier's verdict on each candidate under `details.candidates`."""
    if lacking is not None:
        name, _, reason = lacking.partition(": ")
        return json.dumps({name: Verdict(False, reason).as_json()}, sort_keys=True)
    if len(checks) == 1:
        return json.dumps({n: v.as_json() for n, v in checks[0].items()}, sort_keys=True, default=str)
    names = list(dict.fromkeys(n for verdicts in checks for n in verdicts))
    column = {}
    for name in names:
        mine = [verdicts.get(name) for verdicts in checks]
        failed = next((v for v in mine if v is not None and not v.passed), None)
        column[name] = {"passed": failed is None, "reason": failed.reason if failed else "ok",
                        "details": {"candidates": [v.as_json() if v is not None else None for v in mine]}}
    return json.dumps(column, sort_keys=True, default=str)


class VerifyStage(Stage):
    name = "verify"
    columns = (pa.field("verification", pa.string()),)  # every verifier's verdicts, JSON (`_verification_json`)

    def run(self, work: BatchWork, state: BatchState) -> BatchState:
        return verify_batch(state, work.method, work.verifiers)
