"""`python_tests`: run the response's code against the seed's `tests` in the sandbox.

Data contract: the seed's `tests` is Python that exercises the solution's functions with `assert`
statements at its top level and/or in `def test_*()` functions (called in order, no arguments).
Only the standard library is importable (the sandbox runs `python -I -S`).

The code is the *last* fenced block labelled python/py/python3 (a revision or the final program
comes last, as open-r1's code reward takes it), else the last unlabelled fenced block; a block cut
off by the token limit counts. A response without one is `no_code_block`: prose is never parsed
or run as code.

Reasons: `ok`; `no_code_block`; `syntax_error: line N`; `solution_error: <Error> at line N`
(the code fails before the tests run); `tests_failed: <Error> at test line N`; `timeout`;
`memory_limit`; `output_limit`; `crashed: <signal>` (or `crashed: no verdict (exit N)` when the
program ended without the runner's verdict, e.g. it exited early or faked one); the seed's own
problems are `tests_unusable: ...`. Details: sandbox status, exit code, wall seconds, sandbox kind
and, under bubblewrap only, a bounded stderr tail (the sandbox has no secrets to print; the
rlimits fallback can read files, so its output is not kept).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions
from synthfactory.verify.python_tests_runner import MARK
from synthfactory.verify.sandbox import SandboxLimits, SandboxResult, run_python

log = logging.getLogger(__name__)

RUNNER_SOURCE = Path(__file__).with_name("python_tests_runner.py").read_text()
FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
PYTHON_LABELS = {"python", "py", "python3"}
ERROR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")
STDERR_TAIL_CHARS = 1000


def extract_code(response: str) -> str | None:
    """The last python-labelled fenced block, else the last unlabelled one, else None."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(response)]
    for wanted in (PYTHON_LABELS, {""}):
        chosen = [code for label, code in blocks if label in wanted and code.strip()]
        if chosen:
            return chosen[-1]
    return None


class PythonTestsOptions(VerifierOptions):
    """Limits of one sandboxed run and where runs happen."""

    timeout_s: float = Field(default=5.0, gt=0, le=300, description="wall seconds per row, whole process tree")
    cpu_s: int = Field(default=5, ge=1, le=300, description="CPU seconds per process")
    memory_mb: int = Field(default=512, ge=64, le=65536, description="address space per process")
    max_output_kb: int = Field(default=1024, ge=1, le=1_048_576, description="stdout + stderr before the kill")
    max_processes: int = Field(default=8, ge=1, le=4096, description="processes and threads of the sandbox")
    workers: int | None = Field(default=None, ge=1, le=1024, description="rows at once (default: the cores)")
    where: Literal["auto", "local", "ray"] = Field(
        default="auto", description="auto: Ray tasks on a multi-node cluster with free CPUs, else local threads")

    def limits(self) -> SandboxLimits:
        return SandboxLimits(timeout_s=self.timeout_s, cpu_s=self.cpu_s, memory_mb=self.memory_mb,
                             max_output_kb=self.max_output_kb, max_processes=self.max_processes)


def _verdict_line(stdout: str, nonce: str) -> dict[str, Any] | None:
    """The runner's verdict: the last line carrying this run's nonce, parsed; None if absent."""
    prefix = f"{MARK} {nonce} "
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            try:
                verdict = json.loads(line[len(prefix):])
            except ValueError:
                return None
            return verdict if isinstance(verdict, dict) else None
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else 0


def _error(value: Any) -> str:
    return value if isinstance(value, str) and ERROR_NAME.fullmatch(value) else "Exception"


def judge(result: SandboxResult, verdict: dict[str, Any] | None) -> tuple[bool, str]:
    """Pass/fail and the reason from the sandbox's ending and the runner's verdict (if it gave one)."""
    if verdict is not None:
        status = verdict.get("status")
        if status == "ok":
            return True, "ok"
        if status == "syntax_error":
            return False, f"syntax_error: line {_int(verdict.get('line'))}"
        if status == "bad_tests":
            return False, f"tests_unusable: syntax_error: line {_int(verdict.get('line'))}"
        if status == "no_tests":
            return False, "tests_unusable: no assert and no test_ function"
        if status == "memory":
            return False, "memory_limit"
        if status == "failed":
            error, line = _error(verdict.get("error")), _int(verdict.get("line"))
            if verdict.get("where") == "tests":
                return False, f"tests_failed: {error} at test line {line}"
            return False, f"solution_error: {error} at line {line}"
    if result.status == "timeout":
        return False, "timeout"
    if result.status == "output_limit":
        return False, "output_limit"
    if result.status == "memory":
        return False, "memory_limit"
    if result.signal:
        return False, f"crashed: {result.signal}"
    return False, f"crashed: no verdict (exit {result.exit_code})"


class PythonTestsVerifier(Verifier):
    """Runs the response's code against the seed's tests in the sandbox (bubblewrap, else rlimits)."""

    name: ClassVar[str] = "python_tests"
    Options: ClassVar[type[VerifierOptions]] = PythonTestsOptions
    needs: ClassVar[tuple[str, ...]] = ("tests",)
    description: ClassVar[str] = "the response's last python block passes the seed's tests in a sandbox"

    options: PythonTestsOptions

    def verify(self, claim: Claim) -> Verdict:
        code = extract_code(claim.response)
        if code is None:
            return Verdict(False, "no_code_block", {"status": "not_run"})
        nonce = secrets.token_hex(16)
        payload = json.dumps({"nonce": nonce, "solution": code, "tests": str(claim.seed.get("tests") or "")})
        result = run_python(RUNNER_SOURCE, payload.encode(), self.options.limits())
        verdict = _verdict_line(result.stdout_tail, nonce)
        passed, reason = judge(result, verdict)
        status = result.status if verdict is None else ("ok" if passed else "failed")
        details: dict[str, Any] = {"status": status, "exit_code": result.exit_code,
                                   "wall_s": round(result.wall_s, 3), "sandbox": result.sandbox}
        if verdict is not None and passed:
            details["tests"], details["asserts"] = _int(verdict.get("tests")), _int(verdict.get("asserts"))
        if result.sandbox == "bubblewrap" and not passed and result.stderr_tail:
            details["stderr_tail"] = result.stderr_tail[-STDERR_TAIL_CHARS:]
        return Verdict(passed, reason, details)

    def verify_many(self, claims: list[Claim]) -> list[Verdict]:
        """In parallel: Ray tasks on CPU workers of a multi-node cluster (or `where: ray`), else a
        thread per core, each driving one sandbox process."""
        if not claims:
            return []
        if self._use_ray():
            from synthfactory.verify.remote import verify_on_ray

            return verify_on_ray(self, claims)
        return self.verify_local(claims)

    def verify_local(self, claims: list[Claim]) -> list[Verdict]:
        workers = min(self.options.workers or _cores(), len(claims))
        if workers == 1:
            return [self.verify(claim) for claim in claims]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="python-tests") as pool:
            return list(pool.map(self.verify, claims))

    def _use_ray(self) -> bool:
        """`where: ray`, or `auto` on a connected multi-node cluster; never local-only by default,
        where engine actors may hold every CPU."""
        if self.options.where == "local":
            return False
        try:
            import ray
        except ImportError:
            return False
        if not ray.is_initialized():
            return False
        if self.options.where == "ray":
            return True
        return sum(1 for node in ray.nodes() if node.get("Alive")) > 1


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
