"""Verification on a Ray cluster's CPU workers, not on the driver: one task (num_cpus=1) per claim.

Never waits for CPUs that will not come: with no free CPU (engine actors can hold them all on a
one-machine cluster) it verifies locally, and claims whose tasks have not finished by a deadline
(every claim's timeout in a row, plus slack) are cancelled and verified locally.
"""

from __future__ import annotations

import logging
from typing import Any

from synthfactory.verify.base import Claim, Verdict, Verifier

log = logging.getLogger(__name__)
SLACK_S = 60.0

_remote_fn: Any = None


def _verify_one(cls: type[Verifier], options: dict[str, Any], claim: Claim) -> dict[str, Any]:
    """On a Ray worker: the verdict of one claim, as JSON (the worker's own sandbox runs it)."""
    verifier = cls(cls.Options(**options))
    return verifier.verify(claim).as_json()


def verify_on_ray(verifier: Any, claims: list[Claim]) -> list[Verdict]:
    """One verdict per claim, in order, from Ray tasks; local for what Ray cannot run in time."""
    import ray

    global _remote_fn
    if ray.available_resources().get("CPU", 0) < 1:
        log.info("%s: no free Ray CPU; verifying %d claims locally", verifier.name, len(claims))
        return verifier.verify_local(claims)
    if _remote_fn is None:
        _remote_fn = ray.remote(num_cpus=1, max_retries=1)(_verify_one)
    options = verifier.options.model_dump()
    refs = [_remote_fn.remote(type(verifier), options, claim) for claim in claims]
    budget = getattr(verifier.options, "timeout_s", 30.0) * len(claims) + SLACK_S
    done, pending = ray.wait(refs, num_returns=len(refs), timeout=budget)
    for ref in pending:
        ray.cancel(ref, force=True)
    finished = set(done)
    results: list[Verdict | None] = []
    for ref in refs:
        if ref in finished:
            try:
                data = ray.get(ref)
                results.append(Verdict(data["passed"], data["reason"], data["details"]))
                continue
            except Exception as exc:  # a lost worker: the claim is verified here instead
                log.warning("%s: a Ray verification task failed (%s); verifying locally", verifier.name, exc)
        results.append(None)
    missing = [i for i, verdict in enumerate(results) if verdict is None]
    if missing:
        local = verifier.verify_local([claims[i] for i in missing])
        for i, verdict in zip(missing, local, strict=True):
            results[i] = verdict
    return [verdict for verdict in results if verdict is not None]
