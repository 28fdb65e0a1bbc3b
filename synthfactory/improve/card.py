"""A round's model card (`_models/round{k}/README.md`): what the model is, what trained it, how it
measured on the held-out split and on real text, and whether it was promoted."""

from __future__ import annotations

from typing import Any

from synthfactory.model.improve import ModelRecord


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def model_card(record: ModelRecord, loop: Any) -> str:
    h, p, t = record.held_out, record.perplexity, record.paired
    lines = [
        "---",
        f"base_model: {record.base_model}",
        "library_name: " + ("peft" if record.lora and record.round else "transformers"),
        "tags: [synthfactory, self-improvement, rejection-sampling-fine-tuning]",
        "---",
        "",
        f"# {record.dataset}: round {record.round} of the self-learning loop",
        "",
        ("The base model, measured before any round (the loop's round 0)." if record.round == 0 else
         f"The base model `{record.base_model}` fine-tuned ({'LoRA' if record.lora else 'all weights'}, "
         f"{record.steps} steps, {record.tokens} training tokens, on {record.device}) on {record.training_rows} "
         f"verified rows of dataset versions {record.trained_on_versions} (from {record.training_seeds} training "
         f"seeds) and {record.real_rows} real corpus:python-docs paragraphs. This round's rows were generated "
         f"by `{record.generator}`."),
        "",
        f"**{'Promoted' if record.promoted else 'Not promoted'}**: {record.why}.",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    if h:
        ci = f" [{_pct(h.interval[0])}, {_pct(h.interval[1])}]" if h.interval else ""
        lines.append(f"| held-out pass@1 ({h.items} items x {h.samples} samples, temperature {h.temperature}) | "
                     f"{_pct(h.pass_at_1)}{ci} |")
        for key, value in h.breakdown.items():
            lines.append(f"| {key.replace('_', ' ')} | {_pct(value)} |")
    if t:
        ci = f" [{t.interval[0] * 100:+.1f}, {t.interval[1] * 100:+.1f}]" if t.interval else ""
        lines.append(f"| vs round {t.against_round} (paired, pts) | {t.delta * 100:+.1f}{ci}, p={t.p_value} |")
    if p:
        ci = f" [{p.relative_interval[0]:+.1%}, {p.relative_interval[1]:+.1%}]" if p.relative_interval else ""
        lines.append(f"| real-text perplexity ({p.items} held-out paragraphs) | {p.value:.2f} "
                     f"({p.relative:+.1%} vs base{ci}) |")
    lines.append("| wall time (s) | " + ", ".join(f"{k} {v:.0f}" for k, v in record.seconds.items()) + " |")
    if record.files:
        lines += ["", "Files: " + ", ".join(f"`{v}`" for v in record.files.values()) + ". A recipe generates with "
                  "this model by naming the GGUF (a local store): "
                  f"`generation.model: {loop.dataset.uri}/_models/{record.files['gguf']}`."]
    if h and h.examples:
        lines += ["", "First answers on the held-out split (one sample each, as given, with the verdict):", ""]
        for e in h.examples:
            answer = e["answer"].replace("```", "` ` `").strip()
            lines += [f"- `{e['reason']}`: {e['prompt'][:200]!r}", "", "  ```text",
                      *("  " + x for x in answer.splitlines()), "  ```", ""]
    lines += ["", "Measured on the loop's held-out seeds (never generated from by any round), each answer checked "
              "by every verifier of the recipe; pass@1 is the mean per-item share of right answers."]
    return "\n".join(lines) + "\n"
