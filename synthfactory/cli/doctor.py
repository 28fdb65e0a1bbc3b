"""`synthfactory doctor`: what the llama.cpp build is, how the engine loads models with it, whether
one token can be generated on this CPU, and the vLLM engine environment (`synthfactory.engines.doctor`)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    doctor = sub.add_parser("doctor", parents=[common],
                            help="check that the llama.cpp build runs on this CPU, and the vLLM engine environment")
    doctor.add_argument("--model", default="smollm2-135m-instruct", help="bundled model name or .gguf path")
    doctor.add_argument("--no-generate", action="store_true", help="only report the build, generate nothing")
    doctor.add_argument("--engine", choices=["llamacpp", "vllm"], default="llamacpp",
                        help="which engine generates the one-token check (vllm: loads the model, about a minute)")
    doctor.add_argument("--quiet", action="store_true", help="one line")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    from synthfactory.engines.doctor import check_failure, llamacpp_report, vllm_report

    report = llamacpp_report(args.model, generate=not args.no_generate and args.engine == "llamacpp")
    check = report["start_check"]
    vllm = None if args.quiet else vllm_report(args.model if args.engine == "vllm" and not args.no_generate else None)
    if args.json:
        print(json.dumps({**report, "vllm": vllm}))
    elif args.quiet:
        checked = "" if check is None else f"; one-token check {'ok' if check['ok'] else 'FAILED'}"
        print(f"llama.cpp {report['llama_cpp_python']}: {' '.join(report['features'])}; extra buffer types "
              f"{'on' if report['use_extra_bufts'] else 'off'}" + checked)
    else:
        print(f"llama-cpp-python {report['llama_cpp_python']}\n  build: {report['system_info']}")
        print(f"  CPU features beyond AVX2 compiled in: {', '.join(report['non_portable']) or 'none (portable)'}")
        print(f"  AMX in the build: {'yes: models load with extra buffer types off' if report['amx'] else 'no'}")
        print(f"  model params the engine passes: use_extra_bufts={report['use_extra_bufts']}")
        if check is not None:
            print(f"  one-token generation on {args.model}: {'ok' if check['ok'] else 'FAILED: ' + check['detail']}")
        print(f"  sandbox for generated code: {report['sandbox']}")
        assert vllm is not None  # not --quiet
        print(vllm_lines(vllm, args.model))
    failure = check_failure(report, args.model)
    if failure is not None:
        raise failure
    if args.engine == "vllm" and not (vllm and vllm.get("ok")):
        from synthfactory.errors import EngineFailure

        raise EngineFailure(f"the vLLM engine environment cannot generate: {(vllm or {}).get('detail', 'not checked')}")
    return 0


def vllm_lines(vllm: dict[str, Any], model: str) -> str:
    """The vLLM engine environment as `doctor` prints it."""
    if not vllm["found"]:
        return f"vLLM engine environment: none ({vllm['detail']})"
    if not vllm["ok"]:
        return f"vLLM engine environment: {vllm['python']}\n  FAILED: {vllm['detail']}"
    lines = [f"vLLM engine environment: {vllm['python']}",
             f"  package: {vllm['package']} {vllm['version']} (vllm {vllm['vllm']}), device: {vllm['device']}"]
    if "start_check" in vllm:
        lines.append(f"  one-token generation on {model}: ok (loaded in {vllm['load_seconds']}s)")
    return "\n".join(lines)
