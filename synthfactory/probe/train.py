"""Fine-tune a probe model with TRL: SFTTrainer for chats (`messages`) and plain text, DPOTrainer for
preference pairs (`prompt`/`chosen`/`rejected`).

LoRA adapters (peft) on a CPU; on a GPU the whole model (`lora=None` picks). One seed fixes the
data order, the adapters' initialisation and dropout, so the same call gives the same model. The
budget is steps and/or training tokens (TRL counts the input tokens it feeds, padding excluded);
training stops at whichever comes first.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synthfactory.errors import UserError

LAYOUTS = ("sft", "dpo")
MAX_LENGTH = 512  # tokens per example: the bundled recipes' rows are far shorter
LORA_LR = 5e-4
FULL_LR = 2e-5
NO_STEP_LIMIT = 100_000  # --max-tokens alone: the token budget stops training


@dataclass(frozen=True)
class TrainResult:
    """The tuned model and what it cost: optimizer steps, input tokens seen, seconds."""

    model: Any
    steps: int
    tokens: int
    seconds: float
    lora: bool
    device: str


def _sft_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SFT examples: a chat becomes prompt (every turn before the last) and completion (the last
    assistant turn), so the loss is on the answer; a plain `text` row trains on all of it."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if row.get("messages"):
            chat = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
            if len(chat) >= 2 and chat[-1]["role"] == "assistant":
                out.append({"prompt": chat[:-1], "completion": chat[-1:]})
        elif row.get("text"):
            out.append({"text": row["text"]})
    if out and len({tuple(sorted(r)) for r in out}) > 1:
        raise UserError("training rows mix chats and plain text; give one kind")
    return out


def _dpo_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def chat(messages: Any) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    return [{"prompt": chat(r["prompt"]), "chosen": chat(r["chosen"]), "rejected": chat(r["rejected"])}
            for r in rows if r.get("chosen") and r.get("rejected")]


def training_examples(rows: list[dict[str, Any]], layout: str) -> list[dict[str, Any]]:
    """The rows as the trainer for `layout` reads them (empty when none fit)."""
    if layout not in LAYOUTS:
        raise UserError(f"training layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    return _dpo_rows(rows) if layout == "dpo" else _sft_rows(rows)


def _budget_callback(max_tokens: int | None, on_step: Callable[[int, int], None] | None, total: int) -> Any:
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if on_step is not None:
                on_step(state.global_step, total)
            if max_tokens is not None and state.num_input_tokens_seen >= max_tokens:
                control.should_training_stop = True
            return control

    return Budget()


def fine_tune(model: Any, tokenizer: Any, rows: list[dict[str, Any]], layout: str = "sft", *, steps: int | None = 20,
              max_tokens: int | None = None, seed: int = 0, lora: bool | None = None, batch_size: int = 2,
              learning_rate: float | None = None,
              on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train `model` on `rows` (`messages` chats or `text` for layout `sft`; `prompt`/`chosen`/`rejected`
    for `dpo`) for at most `steps` optimizer steps and `max_tokens` input tokens, deterministically."""
    import torch
    from datasets import Dataset
    from transformers import set_seed

    if (steps is None or steps <= 0) and (max_tokens is None or max_tokens <= 0):
        raise UserError("the probe's budget is 0: give --steps or --max-tokens above 0")
    if (steps is not None and steps <= 0) or (max_tokens is not None and max_tokens <= 0):
        raise UserError(f"the probe's budget must be above 0 (steps {steps}, max tokens {max_tokens})")
    examples = training_examples(rows, layout)
    if not examples:
        raise UserError(f"no rows to train on in the {layout} layout")
    cuda = torch.cuda.is_available()
    lora = (not cuda) if lora is None else lora
    set_seed(seed)
    total = steps if steps else NO_STEP_LIMIT
    common: dict[str, Any] = dict(
        output_dir=tempfile.mkdtemp(prefix="sf-probe-"), max_steps=total, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1, learning_rate=learning_rate or (LORA_LR if lora else FULL_LR),
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, seed=seed, data_seed=seed,
        logging_strategy="no", save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=not cuda,
        gradient_checkpointing=False,  # TRL turns it on by default: ~20% slower, and a 135M model needs no memory saved
        dataloader_num_workers=0, include_num_input_tokens_seen="non_padding", max_length=MAX_LENGTH,
        bf16=cuda and torch.cuda.is_bf16_supported(),
    )
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    callback = _budget_callback(max_tokens, on_step, total if steps else 0)
    dataset = Dataset.from_list(examples)
    started = time.monotonic()
    model.train()
    if layout == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[callback])
    else:
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=model, args=SFTConfig(**common, packing=False), train_dataset=dataset,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=[callback])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints each log dict to stdout (a CLI's --json is there)
    trainer.train()
    tuned = trainer.model
    tuned.eval()
    return TrainResult(model=tuned, steps=int(trainer.state.global_step),
                       tokens=int(trainer.state.num_input_tokens_seen), seconds=time.monotonic() - started,
                       lora=bool(lora), device="cuda" if cuda else "cpu")
