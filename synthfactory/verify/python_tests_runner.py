"""The program `python_tests` runs inside the sandbox (ours, trusted; never imported for its effect).

It reads {nonce, solution, tests} as JSON on stdin, runs the solution and then the tests in one
namespace (bare `assert`s at the tests' top level, then each `def test_*()` the tests define, in
order), and writes one verdict line, `SYNTHFACTORY-VERDICT <nonce> <json>`, as the last thing on
stdout before it exits. The nonce is fresh per run and arrives on stdin, so a solution that prints
a verdict cannot know it; a solution that exits early leaves no verdict (a failure). Tests run
in-process with the solution, so code written to attack this runner (walking its frames for the
nonce, objects equal to everything) is contained by the sandbox but can still fool its own tests.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import sys

MARK = "SYNTHFACTORY-VERDICT"


def _where(exc: BaseException) -> tuple[str, int]:
    """The innermost tests line the failure passed through, else the innermost solution line."""
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    for wanted in ("<tests>", "<solution>"):
        lines = [line for name, line in frames if name == wanted]
        if lines:
            return wanted.strip("<>"), lines[-1]
    if isinstance(exc, SyntaxError) and exc.filename in ("<tests>", "<solution>"):
        return exc.filename.strip("<>"), exc.lineno or 0
    return "runner", 0


def _failure(exc: BaseException) -> dict:
    where, line = _where(exc)
    status = "memory" if isinstance(exc, MemoryError) else "failed"
    return {"status": status, "error": type(exc).__name__, "where": where, "line": line}


def run(solution: str, tests: str) -> dict:
    """The verdict as a dict: status ok | failed | syntax_error | bad_tests | no_tests | memory."""
    try:
        solution_code = compile(solution, "<solution>", "exec")
    except (SyntaxError, ValueError) as exc:
        return {"status": "syntax_error", "line": getattr(exc, "lineno", 0) or 0}
    try:
        tests_code = compile(tests, "<tests>", "exec")
        asserts = sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(tests)))
    except (SyntaxError, ValueError) as exc:
        return {"status": "bad_tests", "line": getattr(exc, "lineno", 0) or 0}
    namespace: dict = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(solution_code, namespace)
        exec(tests_code, namespace)
        tests_found = [value for name, value in list(namespace.items())
                       if name.startswith("test_") and callable(value)
                       and getattr(getattr(value, "__code__", None), "co_filename", "") == "<tests>"]
        for test in tests_found:
            test()
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too: all are failures
        return _failure(exc)
    if not asserts and not tests_found:
        return {"status": "no_tests"}
    return {"status": "ok", "tests": len(tests_found), "asserts": asserts}


def main() -> None:
    write, exit_now, dumps = os.write, os._exit, json.dumps  # held before the solution can patch them
    payload = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    nonce = payload.pop("nonce")
    try:
        verdict = run(payload["solution"], payload["tests"])
    except BaseException as exc:  # noqa: BLE001 - a MemoryError while running the runner itself
        verdict = _failure(exc)
    line = "\n" + MARK + " " + nonce + " " + dumps(verdict) + "\n"
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - the solution may have broken stdout; the fd is what counts
        pass
    write(1, line.encode())
    exit_now(0)


if __name__ == "__main__":
    main()
