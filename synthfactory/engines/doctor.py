"""Does the llama.cpp build run on this CPU? What `synthfactory doctor` reports: the build, how the
engine loads models with it, and whether one token can be generated (in a child process, so a
native crash is reported, not suffered).

    python -m synthfactory.engines.doctor MODEL   # the child: load MODEL and run the start check
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from synthfactory.errors import EngineFailure


def llamacpp_report(model: str, generate: bool = True, timeout_s: float = 300) -> dict[str, Any]:
    """The build (`build_info`), the model file, and `start_check`: the one-token check's exit code,
    whether it passed, and the telling line of its error output (None when not generating); and
    `sandbox`: which sandbox runs generated code (python_tests)."""
    from synthfactory.engines.llamacpp import build_info, resolve_model_path

    info = build_info()
    path = resolve_model_path(model)
    check = None
    if generate:
        done = subprocess.run([sys.executable, "-X", "faulthandler", "-m", __name__, model],
                              capture_output=True, text=True, timeout=timeout_s)
        lines = done.stderr.strip().splitlines()
        telling = [ln for ln in lines if "GGML_ASSERT" in ln or "Fatal Python error" in ln or "Error" in ln]
        check = {"returncode": done.returncode, "ok": done.returncode == 0,
                 "detail": (telling or lines or [""])[0][-300:]}
    from synthfactory.verify.sandbox import sandbox_in_force

    return {**info, "model": str(path), "start_check": check, "sandbox": sandbox_in_force()}


def check_failure(report: dict[str, Any], model: str) -> EngineFailure | None:
    """The error a failed one-token check is (one line: the signal or the telling line), else None."""
    check = report.get("start_check")
    if check is None or check["ok"]:
        return None
    signal = -check["returncode"] if check["returncode"] < 0 else None
    return EngineFailure(f"llama.cpp cannot generate on this CPU with {model}"
                         + (f" (killed by signal {signal})" if signal else f": {check['detail']}"))


def _start_check(model: str) -> None:
    """In the child: load `model` and generate one token, as every engine replica does at start."""
    from synthfactory.engines.base import EngineSpec, start_check
    from synthfactory.engines.llamacpp import LlamaCppEngine

    spec = EngineSpec("llamacpp", model, logprobs=True)
    start_check(LlamaCppEngine(spec), spec)


if __name__ == "__main__":
    _start_check(sys.argv[1])
