"""`python_tests`: run the response's code against the seed's tests in the sandbox, where the
solution cannot reach the tests or their verdict, and publish only code that does its job.

Data contract: the seed gives `tests` or `io_tests`.
- `tests`: Python that exercises the solution's functions with `assert` statements at its top level
  and/or in `def test_*()` functions (called in order, no arguments). The solution runs in one
  sandboxed process and the tests in another (`solution_runner.py`, `tests_runner.py`); the
  verifier relays each call between them, and only plain data crosses (`plain.py`: None, bool, int,
  float, complex, str, bytes and lists, tuples, dicts, sets and frozensets of them, exact types). A
  return value that is not plain data fails the row (`not_plain_data: <type>`); an exception
  crosses as its type's name and message and is raised again in the tests. The solution never sees
  the tests, their frames or the verdict, so it cannot print, forge or walk its way to a pass, and
  an object "equal to everything" cannot cross. What this cannot express: tests that need the
  solution's own objects (instances of its classes, callbacks passed in, identity, mutation of an
  argument seen by the caller): such a seed is `tests_unusable: passes <type>` or its rows fail as
  `not_plain_data`; write it as functions over plain data, or as `io_tests`.
- `io_tests`: a list of {input, output}: the program runs once per case with that stdin, and the
  verifier compares its stdout with `output` line by line (the same number of lines, trailing
  whitespace ignored; `float_tolerance` compares numbers that differ only in rounding), the format
  of competitive-programming data.
Only the standard library is importable (the sandbox runs `python -I -S`).

Published code does only its job: the solution's process runs under an audit hook (see
`solution_runner.py`) that reports and stops any attempt to open files outside its folder, open
sockets, start processes, send signals, read the environment, load ctypes, start more threads than
`max_threads` or tamper with the interpreter: such a row is `unsafe_code: <event>` even where the
sandbox would have blocked the act and the tests would have passed. `allow: [event, ...]` permits
named events for a recipe whose tasks need them.

The code is the *last* fenced block labelled python/py/python3 (a revision or the final program
comes last, as open-r1's code reward takes it), else the last unlabelled fenced block; a block cut
off by the token limit counts. A response without one is `no_code_block`: prose is never parsed
or run as code.

Reasons: `ok`; `no_code_block`; `syntax_error: line N`; `solution_error: <Error> at line N`
(the code fails before the tests run); `tests_failed: <Error> at test line N`; `tests_failed:
case K: ...` (io); `not_plain_data: <type>`; `solution_exited` (the solution's process ended
while the tests needed it); `unsafe_code: <event>`; `timeout`; `memory_limit`; `output_limit`;
`crashed: <signal>`; the seed's own problems are `tests_unusable: ...`. Details: sandbox status,
exit code, wall seconds, sandbox kind, the unsafe event and, under bubblewrap only, a bounded
stderr tail (the sandbox has no secrets to print; the rlimits fallback can read files, so its
output is not kept).

Without a working bubblewrap the verifier refuses to run generated code (`preflight`: the run
exits 2 before any engine starts) unless SYNTHFACTORY_SANDBOX=rlimits opts in to the weaker sandbox.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthfactory.verify import plain
from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions
from synthfactory.verify.sandbox import SandboxLimits, SandboxProcess, SandboxResult, sandbox_unavailable

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
PLAIN_SOURCE = (_HERE / "plain.py").read_text()
SOLUTION_PROGRAM = PLAIN_SOURCE + "\n" + (_HERE / "solution_runner.py").read_text()
TESTS_PROGRAM = PLAIN_SOURCE + "\n" + (_HERE / "tests_runner.py").read_text()
UNSAFE_EXIT, TAMPERED_EXIT = 86, 87  # solution_runner.py's
FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
PYTHON_LABELS = {"python", "py", "python3"}
ERROR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")
EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_. ]{0,59}")
STDERR_TAIL_CHARS = 1000
MAX_CALLS = 10_000  # calls the tests may make of the solution in one row
BUILTIN_NAMES = frozenset(vars(builtins))


def extract_code(response: str) -> str | None:
    """The last python-labelled fenced block, else the last unlabelled one, else None."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(response)]
    for wanted in (PYTHON_LABELS, {""}):
        chosen = [code for label, code in blocks if label in wanted and code.strip()]
        if chosen:
            return chosen[-1]
    return None


class IOCase(BaseModel):
    """One input/output test: the program's stdin and the stdout expected."""

    model_config = ConfigDict(extra="forbid")
    input: str
    output: str


class PythonTestsOptions(VerifierOptions):
    """Limits of one sandboxed run, what the code may do, and where runs happen."""

    timeout_s: float = Field(default=5.0, gt=0, le=300, description="wall seconds per row (io: per case)")
    cpu_s: int = Field(default=5, ge=1, le=300, description="CPU seconds per process")
    memory_mb: int = Field(default=512, ge=64, le=65536, description="address space per process")
    max_output_kb: int = Field(default=1024, ge=1, le=1_048_576, description="stdout + stderr before the kill")
    max_processes: int = Field(default=8, ge=1, le=4096, description="processes and threads of the sandbox")
    max_threads: int = Field(default=4, ge=0, le=1024, description="threads the solution may start")
    allow: tuple[str, ...] = Field(default=(), description=(
        "audit events the solution may attempt, by name (open, os.listdir, environ, thread, ...) or prefix (socket.*)"))
    float_tolerance: float = Field(default=0.0, ge=0, le=1, description=(
        "io_tests: numbers within this relative (or absolute, near 0) difference are equal"))
    min_mutation_score: float | None = Field(default=None, ge=0, le=1, description=(
        "refuse seeds whose tests kill fewer of their reference's mutants (seeds need `reference`; "
        "`synthfactory seeds check` shows the scores; results are cached)"))
    workers: int | None = Field(default=None, ge=1, le=1024, description="rows at once (default: the cores)")
    where: Literal["auto", "local", "ray"] = Field(
        default="auto", description="auto: Ray tasks on a multi-node cluster with free CPUs, else local threads")

    def limits(self) -> SandboxLimits:
        return SandboxLimits(timeout_s=self.timeout_s, cpu_s=self.cpu_s, memory_mb=self.memory_mb,
                             max_output_kb=self.max_output_kb, max_processes=self.max_processes)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9 else 0


def _error(value: Any) -> str:
    return value if isinstance(value, str) and ERROR_NAME.fullmatch(value) else "Exception"


def _ended(result: SandboxResult) -> str:
    """The reason for a sandboxed process that ended without the frame it owed."""
    if result.status == "timeout":
        return "timeout"
    if result.status == "output_limit":
        return "output_limit"
    if result.status == "memory":
        return "memory_limit"
    if result.signal:
        return f"crashed: {result.signal}"
    if result.exit_code == TAMPERED_EXIT:
        return "unsafe_code: control_pipe"
    if result.exit_code == UNSAFE_EXIT:
        return "unsafe_code: unknown"
    return f"crashed: no verdict (exit {result.exit_code})"


def _stdlib() -> list[str]:
    """What the solution may read: the Python installation (its standard library)."""
    return sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)})


class _Solution:
    """The solution's sandboxed process, as the verifier sees it: frames from it, its unsafe event."""

    def __init__(self, code: str, options: PythonTestsOptions, mode: str, stdin: bytes = b"",
                 deadline: float | None = None) -> None:
        self.box = SandboxProcess(SOLUTION_PROGRAM, options.limits(), stdin=stdin, deadline=deadline,
                                  keep_stdout=mode == "io")
        self.event: dict[str, str] | None = None
        self.forged = False  # a frame out of the protocol came on its control pipe
        self.box.send(plain.dumps({"mode": mode, "solution": code, "allow": list(options.allow),
                                   "max_threads": options.max_threads, "folders": self.box.folders,
                                   "stdlib": _stdlib()}))

    def recv(self) -> dict[str, Any] | None:
        """The next frame that is not an event (an event is kept: the process ends after it)."""
        while True:
            line = self.box.recv()
            if line is None:
                return None
            try:
                frame = plain.loads(line)
            except ValueError:
                self.forged = True  # a broken frame: the solution wrote to the pipe itself
                return None
            if frame.get("kind") == "event":
                event, what = frame.get("event"), frame.get("detail")
                if self.event is None:
                    named = isinstance(event, str) and EVENT_NAME.fullmatch(event)
                    self.event = {"event": event if named else "unknown",
                                  "detail": what[:200] if isinstance(what, str) else ""}
                continue
            return frame

    def end(self) -> tuple[SandboxResult, str | None]:
        """The process ended, and the unsafe-code reason if it attempted a forbidden act."""
        result = self.box.finish()
        if self.event is not None:
            return result, f"unsafe_code: {self.event['event']}"
        if self.forged:
            return result, "unsafe_code: control_pipe"
        if result.exit_code in (UNSAFE_EXIT, TAMPERED_EXIT) and result.status == "failed":
            return result, _ended(result)
        return result, None


class PythonTestsVerifier(Verifier):
    """Runs the response's code against the seed's tests: the solution and the tests each in a
    sandbox of their own (bubblewrap, else the rlimits fallback only when opted in)."""

    name: ClassVar[str] = "python_tests"
    Options: ClassVar[type[VerifierOptions]] = PythonTestsOptions
    needs: ClassVar[tuple[str, ...]] = ("tests|io_tests",)
    description: ClassVar[str] = ("the response's last python block passes the seed's tests, run in a sandbox "
                                  "apart from the solution, and attempts nothing beyond its job")

    options: PythonTestsOptions

    def preflight(self) -> str | None:
        return sandbox_unavailable()

    def screens_seeds(self) -> bool:
        return self.options.min_mutation_score is not None

    def weak_seeds(self, seeds: list[Any]) -> list[str | None]:
        """`weak_tests: ...` for a seed whose tests kill less than `min_mutation_score` of its
        reference's mutants, or that has no reference or no `tests` to mutation-test."""
        minimum = self.options.min_mutation_score
        if minimum is None:
            return [None] * len(seeds)
        from synthfactory.verify.mutation import default_cache, mutation_scores

        reasons: list[str | None] = [None] * len(seeds)
        testable = []
        for k, seed in enumerate(seeds):
            if not isinstance(seed.get("reference"), str) or not seed.get("reference").strip():
                reasons[k] = "weak_tests: no reference solution to mutation-test"
            elif seed.get("tests") in (None, ""):
                reasons[k] = "weak_tests: io_tests are not mutation-tested"
            else:
                testable.append(k)
        reports = mutation_scores([(seeds[k], seeds[k]["reference"]) for k in testable], self, default_cache())
        for k, report in zip(testable, reports, strict=True):
            if report.broken:
                reasons[k] = f"weak_tests: {report.broken}"
            elif report.score is not None and report.score < minimum:
                reasons[k] = (f"weak_tests: mutation score {report.score:.2f} < {minimum} "
                              f"({report.killed} of {report.total} mutants killed)")
        return reasons

    def verify(self, claim: Claim) -> Verdict:
        code = extract_code(claim.response)
        if code is None:
            return Verdict(False, "no_code_block", {"status": "not_run"})
        try:
            if claim.seed.get("io_tests") not in (None, "", []):
                return self._verify_io(code, claim.seed.get("io_tests"))
            return self._verify_calls(code, str(claim.seed.get("tests") or ""))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            # a frame of the solution's making the relay could not pass on (the processes are ended)
            log.debug("python_tests: a frame the relay refused: %s", type(exc).__name__)
            return Verdict(False, "unsafe_code: control_pipe", {"status": "failed"})

    def _details(self, result: SandboxResult, passed: bool, solution: _Solution | None = None,
                 status: str | None = None) -> dict[str, Any]:
        details: dict[str, Any] = {"status": status or ("ok" if passed else result.status),
                                   "exit_code": result.exit_code, "wall_s": round(result.wall_s, 3),
                                   "sandbox": result.sandbox}
        if solution is not None and solution.event is not None:
            details["unsafe"] = solution.event
        if result.sandbox == "bubblewrap" and not passed and result.stderr_tail:
            details["stderr_tail"] = result.stderr_tail[-STDERR_TAIL_CHARS:]
        return details

    def _verify_calls(self, code: str, tests: str) -> Verdict:
        """The solution in one sandbox, the tests in another, each call relayed as plain data."""
        started = time.monotonic()
        deadline = started + self.options.timeout_s
        solution = _Solution(code, self.options, "calls", deadline=deadline)
        tests_box: SandboxProcess | None = None
        try:
            # both start at once (each start is mostly the interpreter's); the tests wait for their frame
            tests_box = SandboxProcess(TESTS_PROGRAM, self.options.limits(), deadline=deadline)
            loaded = solution.recv()
            if loaded is None or loaded.get("kind") != "loaded" or loaded.get("status") != "ok":
                result, unsafe = solution.end()
                reason = unsafe or _load_failure(loaded, result)
                return Verdict(False, reason, self._details(result, False, solution))
            names = _offered_names(loaded.get("names"))
            if names is None:
                result, unsafe = solution.end()
                return Verdict(False, unsafe or "unsafe_code: control_pipe", self._details(result, False, solution))
            tests_box.send(plain.dumps({"tests": tests, "names": names}))
            verdict, calls = None, 0
            while verdict is None:
                line = tests_box.recv()
                frame = _frame(line)
                if frame is None:
                    break
                if frame.get("kind") == "verdict":
                    verdict = frame
                    break
                calls += 1
                if frame.get("kind") != "call" or calls > MAX_CALLS:
                    break
                solution.box.send(plain.dumps(frame))
                answer = solution.recv()
                if answer is not None and answer.get("kind") not in ("return", "raise", "not_plain"):
                    solution.forged = True  # it wrote to the control pipe itself
                    answer = None
                tests_box.send(plain.dumps(answer if answer is not None else {"kind": "ended"}))
            tests_result = tests_box.finish()
            result, unsafe = solution.end()
        finally:
            if tests_box is not None:
                tests_box.finish()
            solution.end()
        if unsafe:
            return Verdict(False, unsafe, self._details(result, False, solution))
        if verdict is None:
            reason = "tests_unusable: too many calls" if calls > MAX_CALLS else _ended(tests_result)
            if tests_result.status == "ok" and result.status != "ok":
                reason = _ended(result)
            return Verdict(False, reason, self._details(tests_result, False, solution))
        passed, reason = _tests_verdict(verdict, result)
        details = self._details(result, passed, solution, status="ok" if passed else "failed")
        if passed:
            details["tests"], details["asserts"] = _int(verdict.get("tests")), _int(verdict.get("asserts"))
            details["calls"] = calls
        return Verdict(passed, reason, details)

    def _verify_io(self, code: str, cases: Any) -> Verdict:
        """The program once per case, its stdout compared with the expected output."""
        try:
            parsed = [IOCase.model_validate(case) for case in cases] if isinstance(cases, list) else None
        except ValueError:
            parsed = None
        if not parsed:
            return Verdict(False, "tests_unusable: io_tests is not a list of {input, output}", {"status": "not_run"})
        result: SandboxResult | None = None
        for number, case in enumerate(parsed, 1):
            solution = _Solution(code, self.options, "io", stdin=case.input.encode())
            try:
                done = solution.recv()
            finally:
                result, unsafe = solution.end()
            if unsafe:
                return Verdict(False, unsafe, self._details(result, False, solution))
            if done is not None and done.get("status") == "syntax_error":
                return Verdict(False, f"syntax_error: line {_int(done.get('line'))}", self._details(result, False))
            if done is None or done.get("kind") != "done":
                # no frame: an exit of its own (os._exit) is an ending like any other; the output decides
                if result.status == "failed" and result.exit_code is not None:
                    done = {"status": "exit", "code": result.exit_code}
                elif result.status == "ok":
                    done = {"status": "ok"}
                else:
                    return Verdict(False, _ended(result), self._details(result, False, solution))
            status = done.get("status")
            if status in ("failed", "memory"):
                reason = "memory_limit" if status == "memory" else \
                    f"solution_error: {_error(done.get('error'))} at line {_int(done.get('line'))} (case {number})"
                return Verdict(False, reason, self._details(result, False, solution))
            if status == "exit":
                return Verdict(False, f"solution_error: exit {_int(done.get('code'))} (case {number})",
                               self._details(result, False, solution))
            wrong = compare_output(solution.box.stdout.decode("utf-8", errors="replace"), case.output,
                                   self.options.float_tolerance)
            if wrong:
                return Verdict(False, f"tests_failed: case {number}: {wrong}", self._details(result, False, solution,
                                                                                               status="failed"))
        assert result is not None
        details = self._details(result, True)
        details["cases"] = len(parsed)
        return Verdict(True, "ok", details)

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


def _offered_names(names: Any) -> dict[str, list[Any]] | None:
    """The solution's top-level names the tests may call or read: identifiers not starting with `_`
    and not shadowing a builtin (a solution's own `abs` or `sorted` must not change what the tests'
    calls mean); None when the frame is not the runner's shape (the solution wrote it)."""
    if not isinstance(names, dict):
        return None
    offered = {}
    for name, spec in names.items():
        if not (isinstance(spec, list) and spec and (spec == ["call"] or (spec[0] == "value" and len(spec) == 2))):
            return None
        if isinstance(name, str) and name.isidentifier() and not name.startswith("_") and name not in BUILTIN_NAMES:
            offered[name] = spec
    return offered


def _frame(line: bytes | None) -> dict[str, Any] | None:
    if line is None:
        return None
    try:
        return plain.loads(line)
    except ValueError:
        return None


def _load_failure(loaded: dict[str, Any] | None, result: SandboxResult) -> str:
    """Why the solution did not load: its syntax or its error, else how its process ended."""
    if loaded is None or loaded.get("kind") != "loaded":
        ended = _ended(result)
        return f"solution_exited (exit {result.exit_code})" if ended.startswith("crashed: no verdict") else ended
    status = loaded.get("status")
    if status == "syntax_error":
        return f"syntax_error: line {_int(loaded.get('line'))}"
    if status == "memory":
        return "memory_limit"
    return f"solution_error: {_error(loaded.get('error'))} at line {_int(loaded.get('line'))}"


def _tests_verdict(verdict: dict[str, Any], solution: SandboxResult) -> tuple[bool, str]:
    """Pass/fail and the reason from the tests' verdict (the only verdict there is)."""
    status = verdict.get("status")
    if status == "ok":
        return True, "ok"
    if status == "bad_tests":
        return False, f"tests_unusable: syntax_error: line {_int(verdict.get('line'))}"
    if status == "no_tests":
        return False, "tests_unusable: no assert and no test_ function"
    if status == "unexpressible":
        return False, f"tests_unusable: passes {_short(verdict.get('type'))} (only plain data crosses)"
    if status == "solution_ended":
        answer = verdict.get("answer")
        if not isinstance(answer, dict):
            answer = {}
        if answer.get("kind") == "not_plain":
            return False, f"not_plain_data: {_short(answer.get('type'))}"
        ended = _ended(solution)
        return False, "solution_exited" if ended.startswith("crashed: no verdict") else ended
    if status == "failed":
        return False, f"tests_failed: {_error(verdict.get('error'))} at test line {_int(verdict.get('line'))}"
    return False, "crashed: no verdict (exit 0)"


def _short(value: Any) -> str:
    return value[:60] if isinstance(value, str) and EVENT_NAME.fullmatch(value[:60] or "?") else "object"


def compare_output(got: str, expected: str, tolerance: float = 0.0) -> str | None:
    """None when `got` matches `expected` line by line (trailing whitespace and trailing empty lines
    ignored; numbers within `tolerance` equal), else what differs, in a few words."""
    have = got.rstrip().splitlines() if got.strip() else []
    want = expected.rstrip().splitlines() if expected.strip() else []
    if len(have) != len(want):
        return f"{len(have)} lines, expected {len(want)}"
    for number, (a, b) in enumerate(zip(have, want, strict=True), 1):
        a, b = a.rstrip(), b.rstrip()
        if a == b:
            continue
        if tolerance and _close(a.split(), b.split(), tolerance):
            continue
        return f"line {number} differs"
    return None


def _close(have: list[str], want: list[str], tolerance: float) -> bool:
    if len(have) != len(want):
        return False
    for a, b in zip(have, want, strict=True):
        if a == b:
            continue
        try:
            x, y = float(a), float(b)
        except ValueError:
            return False
        if not abs(x - y) <= tolerance * max(1.0, abs(y)):
            return False
    return True


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
