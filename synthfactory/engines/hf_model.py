"""A model as a plain Hugging Face folder: what vLLM and trainers load.

The recipe names a model the way the llama.cpp engine does (a bundled name such as
`smollm2-135m-instruct`, or a `.gguf` path), a local Hugging Face folder (with `config.json`), or,
for vLLM, a Hub id already in the local Hugging Face cache. A GGUF is read with Transformers' GGUF
loader, which dequantizes the weights but marks the model quantized (it then refuses to train or
save it), so a plain float32 model is built from the same config without `quantization_config`,
the dequantized state dict is loaded into it and the embeddings are tied again. The conversion
(~1 min on 2 cores) is saved once under the user's cache (keyed by the file's name, size and
mtime), under a file lock so two replicas starting together convert it once; every later load
reads that folder. Light to import: the engine environment (vLLM, no Prefect) imports it too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from synthfactory.cache import cache_root
from synthfactory.errors import UserError
from synthfactory.model.lineage import stable_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModelSource:
    """Where a model comes from: `name` as the recipe gave it, `path` the file or folder, `gguf`
    whether it needs the conversion, `key` what identifies its weights (for fingerprints)."""

    name: str
    path: Path
    gguf: bool
    key: str


def cache_dir() -> Path:
    """`$SYNTHFACTORY_PROBE_CACHE`, else `{XDG_CACHE_HOME or ~/.cache}/synthfactory/probe`."""
    given = os.environ.get("SYNTHFACTORY_PROBE_CACHE")
    return Path(given) if given else cache_root("probe")


def resolve_base_model(model: str | None) -> BaseModelSource:
    """A bundled name, a `.gguf` file, or a local Hugging Face model folder; anything else is one
    line (exit 2)."""
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

    log.info("converting %s to a plain Hugging Face model under %s (once)", source.path, into)
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
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(into)


def model_folder(source: BaseModelSource) -> Path:
    """The Hugging Face folder a model loads from: the given folder, or the converted GGUF
    (converted once; a second process waiting on the lock finds it done)."""
    if not source.gguf:
        return source.path
    folder = cache_dir() / f"{source.path.stem}-{source.key[:12]}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "config.json").is_file():
            _convert_gguf(source, folder)
    return folder


def hf_model_path(model: str) -> str:
    """What vLLM's `LLM(model=...)` takes for a recipe's model: a bundled name or `.gguf` becomes
    its converted folder, a local folder stays; anything else (a Hub id) goes to vLLM as it is,
    which finds it in the local Hugging Face cache or fails in one line."""
    from synthfactory.engines.llamacpp import BUNDLED_MODELS

    if Path(model).expanduser().is_dir() or model.endswith(".gguf") or model in BUNDLED_MODELS:
        return str(model_folder(resolve_base_model(model)))
    return model
