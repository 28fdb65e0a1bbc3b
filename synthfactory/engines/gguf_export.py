"""A tuned model as a GGUF file the `llamacpp` engine loads unchanged (`generation.model: /path/x.gguf`),
written by llama.cpp's own converter (`convert_hf_to_gguf.py`).

Why a GGUF and not a `transformers` engine: a model tuned on version N then generates version N+1
through the very path every version is made and measured with (llama.cpp's sampler and prompt cache,
its Ray replicas, `threads`, the start check), several times faster on a CPU than `generate` in
transformers, and a tuned model is one file a recipe names. The converter is llama.cpp's, so what it
writes is what llama.cpp reads (the Q/K permutation, tied embeddings, the tokenizer and chat template).

The converter is not in the llama-cpp-python wheel: it ships in its source distribution
(`vendor/llama.cpp`). The files it needs (the script, `conversion/`, `gguf-py/`) are extracted once,
for the installed llama-cpp-python version, into `~/.cache/synthfactory/llama-convert/<version>/`,
from the sdist in `$SYNTHFACTORY_LLAMA_CPP_SDIST`, in the wheelhouse (`make install` may keep it), or
else fetched by pip (`pip download --no-binary :all:` of the same version: one download, ~77 MB).
"""

from __future__ import annotations

import fcntl
import glob
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from synthfactory.cache import cache_root
from synthfactory.errors import UserError

log = logging.getLogger(__name__)

CONVERTER = "convert_hf_to_gguf.py"
_KEEP = (CONVERTER, "conversion/", "gguf-py/", "LICENSE")
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("llama-cpp-python is not installed: `make install` builds it") from None


def _find_sdist(version: str) -> Path | None:
    named = os.environ.get("SYNTHFACTORY_LLAMA_CPP_SDIST")
    if named:
        if not Path(named).is_file():
            raise UserError(f"SYNTHFACTORY_LLAMA_CPP_SDIST={named}: no such file (the llama-cpp-python "
                            f"{version} source archive)")
        return Path(named)
    found = sorted(glob.glob(str(cache_root() / "wheels" / "*" / f"llama_cpp_python-{version}.tar.gz")))
    return Path(found[-1]) if found else None


def _download_sdist(version: str, folder: Path) -> Path:
    log.info("fetching the llama-cpp-python %s source archive for its GGUF converter (once)", version)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                           f"llama-cpp-python=={version}", "-d", str(folder)],
                          capture_output=True, text=True, timeout=900)
    found = sorted(folder.glob(f"llama_cpp_python-{version}.tar.gz"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no archive"])[-1][:200]
        raise UserError(f"llama.cpp's GGUF converter ships in the llama-cpp-python {version} source archive, "
                        f"which could not be fetched ({last}); download llama_cpp_python-{version}.tar.gz and "
                        "set SYNTHFACTORY_LLAMA_CPP_SDIST to its path")
    return found[0]


def converter_dir() -> Path:
    """The folder holding llama.cpp's `convert_hf_to_gguf.py` (with its `conversion/` and `gguf-py/`)
    for the installed llama-cpp-python, extracted on first use."""
    version = llama_cpp_version()
    target = cache_root() / "llama-convert" / version
    if (target / CONVERTER).is_file():
        return target
    # One process extracts (and, if need be, downloads); one waiting on the lock finds it done. A
    # folder without the converter is only ever a leftover of a process that died mid-way.
    with open(_ensure(target.parent) / f"{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / CONVERTER).is_file():
            _extract_converter(version, target)
    return target


def _extract_converter(version: str, target: Path) -> None:
    """The converter's files from the sdist into `target`, whole or not at all (staged, then renamed)."""
    with tempfile.TemporaryDirectory(prefix="sf-llama-src-") as tmp:
        sdist = _find_sdist(version) or _download_sdist(version, Path(tmp))
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            with tarfile.open(sdist) as archive:
                prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
                members = [m for m in archive.getmembers()
                           if m.name.startswith(prefix) and m.name[len(prefix):].startswith(_KEEP)]
                if not any(m.name.endswith(CONVERTER) for m in members):
                    raise UserError(f"{sdist}: no vendor/llama.cpp/{CONVERTER} in it (not a llama-cpp-python sdist?)")
                for member in members:
                    member.name = member.name[len(prefix):]
                    archive.extract(member, staging, filter="data")
            shutil.rmtree(target, ignore_errors=True)  # a dead process's partial folder (we hold the lock)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_plain(model: Any, tokenizer: Any, folder: Path, chat_template: str | None = None) -> Path:
    """`model` (a transformers causal LM, or a peft model whose adapters are merged first) and its
    tokenizer as a Hugging Face folder (safetensors). `chat_template` is written when the tokenizer
    has none (a tokenizer read from a GGUF may lack it, and llama.cpp formats chats with it)."""
    if hasattr(model, "merge_and_unload"):  # peft: fold the LoRA weights into the base weights
        model = model.merge_and_unload()
    config = model.config
    config.__dict__.pop("quantization_config", None)  # a GGUF load marks it quantized; these weights are plain
    model.save_pretrained(folder, safe_serialization=True)
    if chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
    return folder


def convert_folder(folder: str | Path, out: str | Path, outtype: str = "q8_0", timeout: float = 900) -> Path:
    """A Hugging Face model folder as one GGUF file at `out`, by llama.cpp's converter, run in a
    child process (it imports torch and its own gguf-py)."""
    if outtype not in OUTTYPES:
        raise UserError(f"outtype: {outtype!r} is not one of {', '.join(OUTTYPES)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")  # two converting to one `out` cannot mix
    script = converter_dir() / CONVERTER
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter's own gguf-py: the version it was written for
    done = subprocess.run([sys.executable, str(script), str(folder), "--outfile", str(partial),
                           "--outtype", outtype], capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]
        raise UserError(f"llama.cpp's converter could not convert {folder}: {last}")
    partial.replace(out)
    return out


def export_gguf(model: Any, tokenizer: Any, out: str | Path, outtype: str = "q8_0",
                chat_template: str | None = None) -> Path:
    """A tuned model (LoRA merged) as a GGUF at `out` for `generation.model`; the Hugging Face folder
    in between is temporary."""
    with tempfile.TemporaryDirectory(prefix="sf-hf-") as tmp:
        save_plain(model, tokenizer, Path(tmp), chat_template)
        return convert_folder(tmp, out, outtype)


def gguf_chat_template(path: str | Path) -> str | None:
    """The chat template stored in a GGUF file (`tokenizer.chat_template`), or None."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return llm.metadata.get("tokenizer.chat_template")
    finally:
        llm.close()
