"""The probe's base model: the recipe's generator as a plain, trainable Hugging Face model.

A bundled name (`smollm2-135m-instruct`) or a `.gguf` path is read with Transformers' GGUF loader,
which dequantizes the weights but marks the model quantized and then refuses to train or save it.
So a plain model is built from the same config without `quantization_config`, the dequantized
state dict is loaded into it and the embeddings are tied again. The conversion (~1 min on 2 cores)
is saved once under the user's cache (keyed by the file's name, size and mtime) and every later
load reads that folder (seconds); within a process the base model is loaded once and copied.
A local Hugging Face model folder (with `config.json`) is loaded as it is.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthfactory.cache import cache_root
from synthfactory.errors import UserError
from synthfactory.lineage import stable_hash

log = logging.getLogger(__name__)
_CACHE: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class BaseModelSource:
    """Where a base model comes from: `name` as the recipe gave it, `path` the file or folder,
    `gguf` whether it needs the conversion, `key` what identifies its weights (for fingerprints)."""

    name: str
    path: Path
    gguf: bool
    key: str


def cache_dir() -> Path:
    """`$SYNTHFACTORY_PROBE_CACHE`, else `{XDG_CACHE_HOME or ~/.cache}/synthfactory/probe`."""
    given = os.environ.get("SYNTHFACTORY_PROBE_CACHE")
    if given:
        return Path(given)
    return cache_root("probe")


def resolve_base_model(model: str | None) -> BaseModelSource:
    """The recipe's generator model as a probe base: a bundled name, a `.gguf` file, or a local
    Hugging Face model folder; anything else is one line (exit 2)."""
    from synthfactory.engines.llamacpp import BUNDLED_MODELS, resolve_model_path
    from synthfactory.errors import EngineUnavailableError

    if not model:
        raise UserError("the version records no generator model; give the base model with --model")
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise UserError(f"base model {model!r}: a folder without config.json is not a Hugging Face model")
        stat = (folder / "config.json").stat()
        return BaseModelSource(model, folder.resolve(), False, stable_hash(str(folder.resolve()), stat.st_mtime))
    try:
        path = resolve_model_path(model)
    except EngineUnavailableError:
        raise UserError(f"base model {model!r} is neither a bundled model ({', '.join(BUNDLED_MODELS)}), a .gguf "
                        "file nor a local Hugging Face model folder") from None
    stat = path.stat()
    return BaseModelSource(model, path, True, stable_hash(path.name, stat.st_size, int(stat.st_mtime)))


def _convert_gguf(source: BaseModelSource, into: Path) -> None:
    """Dequantize the GGUF once into a plain model folder (written to a temp name, then renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a trainable model under %s (once)", source.path, into)
    tokenizer = AutoTokenizer.from_pretrained(source.path.parent, gguf_file=source.path.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.path.parent, gguf_file=source.path.name,
                                                  dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the dequantized weights are plain float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.tie_weights()
    tmp = into.with_name(f"{into.name}.{os.getpid()}.tmp")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(into)


def model_folder(source: BaseModelSource) -> Path:
    """The Hugging Face folder a base model loads from: the given folder, or the converted GGUF."""
    if not source.gguf:
        return source.path
    folder = cache_dir() / f"{source.path.stem}-{source.key[:12]}"
    if not (folder / "config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        _convert_gguf(source, folder)
    return folder


def load_base_model(model: str | BaseModelSource) -> tuple[Any, Any]:
    """(model, tokenizer) of a base model, trainable, float32, in eval mode: a fresh copy each call
    (training changes the weights), from one load per process."""
    source = model if isinstance(model, BaseModelSource) else resolve_base_model(model)
    with _LOCK:
        if source.key not in _CACHE:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            folder = model_folder(source)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            loaded.eval()
            _CACHE[source.key] = (loaded, tokenizer)
        base, tokenizer = _CACHE[source.key]
    return copy.deepcopy(base), tokenizer
