"""The card's "Ablation (probe fine-tune)" section: what fine-tuning the generator on this version did
to it, per probe recorded, and, where the same probe ran on several versions, a plot of them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthfactory.model.probe import EvalResult, ProbeRecord, read_probes

PROBE_PLOT = "probe_across_versions.png"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _change(value: float | None, interval: list[float] | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        text = f"{value:+.1%}"
        return text + (f" [{interval[0]:+.1%}, {interval[1]:+.1%}]" if interval else "")
    return f"{value:+.4g}" + (f" [{interval[0]:+.4g}, {interval[1]:+.4g}]" if interval else "")


def _accuracy(value: float | None, right: int | None, items: int) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" + (f" ({right}/{items})" if right is not None else "")


def _cells(e: EvalResult) -> list[str]:
    """base, tuned, tuned - base (95% CI), relative (95% CI): perplexities as numbers, task accuracy as
    percentages of the items right and its change in percentage points (no relative change)."""
    if e.metric == "accuracy":
        right: Sequence[int | None] = e.right or [None, None]
        ci = e.delta_interval
        delta = "-" if e.delta is None else (f"{e.delta * 100:+.0f} points"
                                             + (f" [{ci[0] * 100:+.0f}, {ci[1] * 100:+.0f}]" if ci else ""))
        errors = e.verifier_errors or [0, 0]
        cells = [_accuracy(e.base, right[0], e.items), _accuracy(e.tuned, right[1], e.items), delta, "-"]
        for i in (0, 1):
            if errors[i]:
                cells[i] += f", {errors[i]} verifier error{'s' if errors[i] > 1 else ''} counted wrong"
        return cells
    return [_num(e.base), _num(e.tuned), _change(e.delta, e.delta_interval),
            _change(e.relative, e.relative_interval, True)]


def probe_lines(record: ProbeRecord) -> list[str]:
    lines = [
        f"Probe `{record.fingerprint}`: `{record.base_model}` fine-tuned on this version's "
        f"{'DPO pairs' if record.layout == 'dpo' else 'chats'} ({record.rows} examples) with "
        f"{'LoRA' if record.lora else 'all weights'} on {record.device}: {record.steps} steps, {record.tokens} "
        f"training tokens, seed {record.seed}, learning rate {record.learning_rate:g}, batch {record.batch_size}; "
        f"wall time {record.wall_seconds:.0f} s (training {record.train_seconds:.0f} s); {record.created}.",
        "",
        "| evaluation | items | base | tuned | tuned - base (95% CI) | relative (95% CI) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in record.evals:
        lines.append(f"| {e.name}: {e.description} | {e.items} | " + " | ".join(_cells(e)) + " |")
    lines += [f"- not measured: {name}: {why}" for name, why in record.skipped.items()]
    return [*lines, ""]


def _same_probe(store: Any, history: list[Any], record: ProbeRecord) -> dict[int, ProbeRecord]:
    """The record of the same probe (fingerprint) on each version up to this one."""
    found = {}
    for info in history:
        same = [r for r in read_probes(store, info.version) if r.fingerprint == record.fingerprint]
        if same:
            found[info.version] = same[-1]
    return found


def write_probe_plot(by_version: dict[int, ProbeRecord], folder: Any) -> Any:
    """Relative perplexity change (tuned / base - 1, 95% CI) per evaluation, per version."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({e.name for r in by_version.values() for e in r.evals if e.relative is not None})
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for i, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for version, record in sorted(by_version.items()):
            e = record.eval(name)
            if e is None or e.relative is None:
                continue
            xs.append(version + (i - (len(names) - 1) / 2) * 0.08)
            ys.append(e.relative * 100)
            ci = e.relative_interval or [e.relative, e.relative]
            lo.append((e.relative - ci[0]) * 100)
            hi.append((ci[1] - e.relative) * 100)
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=name)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(title="probe: perplexity change after fine-tuning on each version", xlabel="version",
           ylabel="tuned / base - 1 (%)")
    ax.set_xticks(sorted(by_version))
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return folder.child(PROBE_PLOT).write_bytes(buffer.getvalue())


def probe_section(store: Any, version: int, folder: Any, history: list[Any] | None = None) -> str:
    """The section's markdown ('' when no probe ran on `version`); writes the comparison plot into
    `folder` when the newest probe also ran on an earlier version."""
    records = read_probes(store, version)
    if not records:
        return ""
    lines = ["## Ablation (probe fine-tune)", "",
             "What training on this version does to a model: the generator fine-tuned on it "
             "(`synthfactory probe`), measured before and after on held-out sets no recipe trains on. "
             "Lower perplexity is better; higher task accuracy (a verified recipe's held-out seeds answered "
             "right, by its verifiers) is better; intervals are paired bootstraps over the evaluation items.", ""]
    for record in records:
        lines += probe_lines(record)
    history = history if history is not None else [v for v in store.versions() if v.version <= version]
    by_version = _same_probe(store, history, records[-1])
    if len(by_version) > 1:
        write_probe_plot(by_version, folder)
        lines += [f"The same probe on versions {', '.join(map(str, sorted(by_version)))}:", "",
                  f"![probe across versions]({PROBE_PLOT})", ""]
    return "\n".join(lines)
