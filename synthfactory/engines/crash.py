"""Why an engine replica died: its fault report (Python's faulthandler), signal, node and logs, in one line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import ray

from synthfactory.engines.base import EngineSpec
from synthfactory.errors import EngineFailure, SynthfactoryError

FAULT_SIGNALS = {"Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT", "Illegal instruction": "SIGILL",
                 "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE", "Bus error": "SIGBUS"}


def worker_log() -> str | None:
    """The file Ray sends this worker's stderr to (where native libraries print their aborts)."""
    try:
        target = os.readlink("/proc/self/fd/2")
    except OSError:
        return None
    return target if target.startswith("/") else None


def report_faults(path: str, where: dict[str, Any]) -> None:
    """Send Python's fault handler (SIGSEGV, SIGABRT, SIGILL, SIGFPE, SIGBUS) to `path`."""
    import faulthandler

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a", encoding="utf-8")  # must stay open for the process's life
    except OSError:
        return
    handle.write(f"replica pid {where['pid']} on node {where['node_id']}, worker log {where['worker_log']}\n")
    handle.flush()
    faulthandler.enable(file=handle, all_threads=True)
    _FAULT_FILES.append(handle)  # faulthandler writes to its descriptor: keep the file open


_FAULT_FILES: list[Any] = []


def _doing(fault: str) -> str:
    """What the crashed thread was doing, from the Python stack of its fault report."""
    current = fault.split("Current thread", 1)[-1]
    for marker, doing in (("in start_check", " during its one-token start check"),
                          ("in create_engine", " while loading the model"),
                          ("in chat", " while generating")):
        if marker in current:
            return doing
    return ""


def crash_cause(spec: EngineSpec, where: dict[str, Any] | None, when: str) -> str:
    """One line: which engine and model died, of which signal, on which node, and where its log is."""
    where = where or {}
    report = where.get("fault_report")
    text = ""
    if report:
        try:
            text = Path(report).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    faults = re.findall(r"Fatal Python error: ([^\n]+)", text)
    if faults:  # the header written by the process that crashed (Ray restarts a replica under a new pid)
        headers = re.findall(r"replica pid \d+ on node (\S+), worker log (\S+)",
                             text[:text.rindex("Fatal Python error")])
        if headers:
            where = {**where, "node_id": headers[-1][0], "worker_log": headers[-1][1]}
    what = f"engine {spec.engine} (model {spec.model}) "
    signal = None
    if faults:
        name = faults[-1].strip().rstrip(".")
        signal = FAULT_SIGNALS.get(name)
        what += f"crashed {when} with {signal} ({name})" if signal else f"crashed {when}: {name}"
        what += _doing(text[text.rindex("Fatal Python error"):])
    else:
        what += f"died {when} with no fault report (killed: SIGKILL or the out-of-memory killer?)"
    node = str(where.get("node_id") or "?")[:12]
    log_at = where.get("worker_log") or "the Ray session's logs folder"
    hint = ""
    if signal == "SIGILL":
        hint = "; this CPU lacks an instruction the llama.cpp build uses (it needs AVX2)"
    elif spec.backend.crash_hint:
        hint = f"; {spec.backend.crash_hint}"
    return f"{what} on node {node}; worker log: {log_at}; fault report: {report}{hint}"


def start_failure(spec: EngineSpec, exc: BaseException, where: dict[str, Any] | None) -> SynthfactoryError:
    """The one-line error for a replica that could not start: our own errors as they are, a
    process that died with its signal and logs, anything else with its type and first line."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, SynthfactoryError):
            return cause
        first = (str(cause).strip().splitlines() or [""])[0][:300]
        return EngineFailure(f"engine {spec.engine} (model {spec.model}) failed to start: "
                             f"{type(cause).__name__}: {first}")
    if isinstance(exc, (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)):
        return EngineFailure(crash_cause(spec, where, "at start"))
    return EngineFailure(f"engine {spec.engine} (model {spec.model}) failed to start: {type(exc).__name__}: "
                         f"{(str(exc).strip().splitlines() or [''])[0][:300]}")
