"""The probe's base model: the recipe's generator as a plain, trainable Hugging Face model.

A bundled name (`smollm2-135m-instruct`) or a `.gguf` path becomes a plain float32 Hugging Face
folder once, under the user's cache (`synthfactory.engines.hf_model`, shared with the vLLM
engine); a local Hugging Face model folder (with `config.json`) is loaded as it is. Within a
process the base model is loaded once and copied.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from synthfactory.engines.hf_model import (  # noqa: F401 - the probe's names
    BaseModelSource,
    cache_dir,
    model_folder,
    resolve_base_model,
)

log = logging.getLogger(__name__)
_CACHE: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


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
