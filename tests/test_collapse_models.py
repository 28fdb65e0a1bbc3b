"""A tuned model generates through the factory's own llama.cpp engine: LoRA merged, converted to GGUF
by llama.cpp's converter (synthfactory/engines/gguf_export.py), loaded unchanged by `llamacpp`.

The planted change: LoRA adapters with random (not zero) weights, so the tuned model differs from
the base. llama.cpp must then score a text as the merged transformers model does, not as the base
does: a wrong Q/K permutation, an unmerged adapter or a different tokenizer would fail here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from synthfactory.engines.base import ChatRequest, EngineSpec

TEXT = ("The for statement in Python iterates over the items of any sequence, such as a list or a "
        "string, in the order that they appear in the sequence.")


def _mean_logprob_hf(model, token_ids: list[int]) -> float:
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([token_ids])).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(1, torch.tensor(token_ids[1:])[:, None]).mean().item()


def _mean_logprob_llama(path: Path, token_ids: list[int]) -> float:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), logits_all=True, n_ctx=256, n_threads=2, verbose=False)
    try:
        llm.eval(token_ids)
        logits = np.asarray(llm.scores[: len(token_ids) - 1], dtype=np.float64)
    finally:
        llm.close()
    logits -= logits.max(axis=1, keepdims=True)
    logprobs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(np.mean([logprobs[i, t] for i, t in enumerate(token_ids[1:])]))


@pytest.fixture(scope="module")
def tuned_gguf(tmp_path_factory):
    """The bundled model with random LoRA adapters merged, as a GGUF; with the token ids of TEXT and
    the mean log-probabilities transformers gives them under the base and the tuned model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from synthfactory.engines.gguf_export import export_gguf, gguf_chat_template
    from synthfactory.engines.llamacpp import resolve_model_path
    from synthfactory.probe import load_base_model

    base, tokenizer = load_base_model("smollm2-135m-instruct")
    ids = tokenizer(TEXT)["input_ids"]
    torch.manual_seed(0)
    tuned = get_peft_model(load_base_model("smollm2-135m-instruct")[0],
                           LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    tuned.eval()
    expected = _mean_logprob_hf(tuned, ids)
    bundled = resolve_model_path("smollm2-135m-instruct")
    path = export_gguf(tuned, tokenizer, tmp_path_factory.mktemp("gguf") / "tuned.gguf",
                       chat_template=gguf_chat_template(bundled))
    return {"path": path, "ids": ids, "base": _mean_logprob_hf(base, ids), "tuned": expected, "bundled": bundled}


def test_llama_cpp_scores_a_text_as_the_merged_tuned_model_does(tuned_gguf):
    got = _mean_logprob_llama(tuned_gguf["path"], tuned_gguf["ids"])
    planted = abs(tuned_gguf["tuned"] - tuned_gguf["base"])  # measured: 0.93 nats per token
    # measured: llama.cpp (Q8_0) within 0.02 nats of transformers (float32) on the tuned model
    assert math.isfinite(got) and abs(got - tuned_gguf["tuned"]) < 0.1 < 0.5 < planted, (got, tuned_gguf)


def test_the_llamacpp_engine_generates_with_the_tuned_gguf_and_its_chat_template(tuned_gguf):
    from synthfactory.engines.gguf_export import gguf_chat_template
    from synthfactory.engines.llamacpp import LlamaCppEngine

    assert gguf_chat_template(tuned_gguf["path"]) == gguf_chat_template(tuned_gguf["bundled"])
    engine = LlamaCppEngine(EngineSpec("llamacpp", str(tuned_gguf["path"]), {"threads": 2}))
    try:
        [result] = engine.chat([ChatRequest(messages=({"role": "user", "content": "Name a colour."},),
                                            max_tokens=8, temperature=0.0, seed=0)])
    finally:
        engine.close()
    assert result.error is None and result.completion_tokens > 0 and result.prompt_tokens > 5
