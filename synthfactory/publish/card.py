"""Dataset cards the Hugging Face Hub reads: README.md with a YAML header, plus PNG plots.

Everything comes from the recipe and the version's commit metadata, so a card can never disagree
with the version it describes. Written for every published version under `{table}/_cards/v{N}/`
and into every export.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from synthfactory.model.metadata import Calibration, JudgeBias, VersionMetadata
from synthfactory.storage import Location
from synthfactory.store import DatasetStore, VersionInfo

CARDS_DIR = "_cards"
SCORE_PLOT = "score_histogram.png"
METRICS_PLOT = "metrics_across_versions.png"


def size_category(rows: int) -> str:
    """The Hub's `size_categories` bucket."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if rows < limit:
            return label
    return "n>100M"


def _public_url(url: str) -> str:
    """An endpoint URL without credentials or query string (never put secrets in a card)."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


Layout = tuple[str, str, list[str]]  # (format, data file, columns) of an export
LAYOUT_NOTES = {
    "hub": "every column of the table, lineage included",
    "jsonl": "every column of the table as JSON lines",
    "messages": "one `messages` column (OpenAI chat format): TRL's SFTTrainer takes it as is",
    "sharegpt": "one `conversations` column of ShareGPT turns (`from`: human/gpt/system, `value`)",
    "dpo": "`prompt`, `chosen`, `rejected` as chat messages (TRL's DPOTrainer takes them as is), "
           "plus `score_chosen` and `score_rejected`",
}


def card_metadata(meta: VersionMetadata, rows: int, data_glob: str = "data/*.parquet") -> dict[str, Any]:
    """The YAML header: license, language, task categories, size, configs, tags (incl. synthetic)."""
    card = meta.card
    header: dict[str, Any] = {
        "license": card.get("license", "other"),
        "language": card.get("language", ["en"]),
        "task_categories": card.get("task_categories", ["text-generation"]),
        "size_categories": [size_category(rows)],
        "tags": sorted({"synthetic", "synthfactory", *card.get("tags", [])}),
        "pretty_name": card.get("pretty_name") or meta.dataset,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": data_glob}]}],
    }
    return header


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    out = ["| | |", "| --- | --- |"]
    for key, value in rows:
        out.append(f"| {key} | {_fmt(value)} |")
    return out


def fenced(text: str, info: str = "") -> list[str]:
    """`text` as a fenced code block whose fence it cannot close: CommonMark ends a fence only at a
    line of at least as many backticks, so the fence is one longer than the longest run in `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return str(value)


def _ci(interval: list[float] | None) -> str:
    return f"95% CI {interval[0]:.2f}-{interval[1]:.2f}" if interval else "95% CI n/a"


def what_a_person_would_see(calibration: Calibration | None) -> str:
    """One sentence on what the judges' threshold means for the rows a user gets: the precision a
    person would see, measured on labelled real outputs, or plainly that it was not measured."""
    real = calibration.real if calibration else None
    fitted = [e for e in ((calibration.model_extra or {}).get("learned") or [] if calibration else [])
              if e.get("training_overlap")]
    if calibration and real and real.rows and fitted:
        worst = fitted[0].get("cross_labeller_worst")
        measured = (f"its ROC-AUC across labellers: {_across(worst)}; cross-validated on the same labellers' rows: "
                    f"{_fmt(fitted[0].get('auc'))}" if worst
                    else f"its cross-validated ROC-AUC: {_fmt(fitted[0].get('auc'))}")
        return (f"not measured on real outputs it was not trained on: {fitted[0]['training_overlap']} of the "
                f"calibration's labelled rows trained the learned judge `{fitted[0]['judge']}`, so its precision there "
                f"is partly a training fit ({measured})")
    if calibration and real and real.rows:
        precision = f"{real.precision:.2f}" if real.precision is not None else "n/a (no labelled row accepted)"
        recall = f"{real.recall:.2f}" if real.recall is not None else "n/a"
        return (f"precision a person would see at threshold {calibration.threshold:g}: {precision} "
                f"({_ci(real.precision_interval)}; {real.true_positives} good of {real.accepted} accepted) on "
                f"{real.rows} labelled real rows, base rate {_fmt(real.base_rate)}; recall {recall} "
                f"({_ci(real.recall_interval)}); ROC-AUC {_fmt(real.auc)} ({_ci(real.auc_interval)})")
    said = "not measured on real outputs"
    if calibration is None:
        return said + " (no calibration of these judges on record)"
    built = calibration.by_origin.get("constructed")
    if built and built.rows and len(calibration.by_origin) == 1:
        return (f"{said}; measured on constructed rows only: AUC {_fmt(built.auc)} ({_ci(built.auc_interval)}, "
                f"{built.rows} rows) — not the rows you get")
    unknown = calibration.by_origin.get("unknown")
    if unknown and unknown.rows:
        return (f"{said}; measured on {calibration.labels.rows} labelled rows of which {unknown.rows} of unknown "
                f"origin: AUC {_fmt(calibration.auc)} — not shown to be the rows you get")
    return said


def _across(d: dict[str, Any]) -> str:
    """One direction across labellers: 'AUC (CI), trained on labeller A's M rows, tested on labeller
    B's N rows (G good)'."""
    train = d.get("train") or []
    return (f"{_fmt(d.get('auc'))} ({_ci(d.get('auc_interval'))}), trained on labeller{'s' if len(train) > 1 else ''} "
            f"{'+'.join(train)}'s {d.get('train_rows')} rows, "
            f"tested on labeller {d.get('test')}'s {d.get('rows')} rows "
            f"({d.get('good')} good)")


def _across_labellers(cv: dict[str, Any]) -> str:
    """The worse ROC-AUC across labellers (the figure to cite) and the other directions; or that it
    was not measured, when the labels name one labeller or none; '' when not recorded (older models)."""
    cross = cv.get("cross_labeller") or {}
    worst = cross.get("worst")
    if worst:
        others = [d for d in cross.get("directions") or []
                  if d.get("auc") is not None and d.get("test") != worst["test"]]
        which = {0: "the only direction measured", 1: "the worse of 2 directions"}.get(
            len(others), f"the lowest of {len(others) + 1} directions")
        return (f"ROC-AUC across labellers {_across(worst)}: {which}"
                + "".join(f"; {'the other' if len(others) == 1 else 'another'} {_across(d)}" for d in others) + "; ")
    if cross:  # several labellers, none with enough rows of both kinds on each side
        reasons = [d["skipped"] for d in cross.get("directions") or [] if d.get("skipped")]
        return f"not measured across labellers ({reasons[0] if reasons else 'no direction had good and bad rows'}); "
    if cv.get("labellers") is not None and len(cv["labellers"]) < 2:
        named = f"one labeller, {next(iter(cv['labellers']))}" if cv["labellers"] else "no labeller"
        return f"not measured across labellers (its labels name {named}); "
    return ""


def _learned_sentence(judge: Any, threshold: Any, estimate: bool = False) -> str:
    """A learned judge's own measure: its worse ROC-AUC across labellers when its labels name several
    (trained on one labeller's rows, tested on another's), then the out-of-fold scores of its
    cross-validation on the labelled rows it was trained on (never its training fit), at the version's
    threshold."""
    cv = judge.cross_validated or {}
    origins = " and ".join(cv.get("origins") or ["unknown-origin"])
    at = cv.get("at_threshold") or {}
    across = _across_labellers(cv)
    if estimate:
        head = (f"precision a person would see at threshold {threshold}, "
                "estimated by the learned judge's cross-validation: ")
    else:
        same = " (the same labellers' rows)" if cv.get("cross_labeller") else ""
        head = (f"{across}cross-validated on {cv.get('rows')} labelled {origins} rows of `{cv.get('labels')}` "
                f"({cv.get('good')} good), out of fold{same}: ROC-AUC {_fmt(cv.get('auc'))}; at threshold {threshold}: "
                "precision ")
    if not at:
        return head + "n/a"
    base = f", base rate {_fmt(cv['good'] / cv['rows'])}" if cv.get("rows") and cv.get("good") is not None else ""
    counts = f"{at.get('true_positives')} good of {at.get('accepted')} accepted"
    return (head + f"{_fmt(at.get('precision'))} ({_ci(at.get('precision_interval'))}; {counts})"
            + (f" on {cv.get('rows')} labelled {origins} rows{base}" if estimate else "")
            + f", recall {_fmt(at.get('recall'))} ({_ci(at.get('recall_interval'))})"
            + ((f"; {across}out of fold on the same labellers' rows {_fmt(cv.get('auc'))}" if across.startswith("ROC")
                else f"; ROC-AUC {_fmt(cv.get('auc'))} (out of fold)") if estimate else ""))


def _method_section(meta: VersionMetadata, example: dict[str, Any] | None, layout: Layout | None) -> list[str]:
    """Which method made the rows, its options, the layout of this copy, and one example row."""
    from synthfactory.methods import METHODS, method_class

    generation = meta.recipe.get("generation") or {}
    name = meta.method
    about = method_class(name).description if name in METHODS else ""
    lines = ["## Method", "", f"`{name}`: {about}." if about else f"`{name}`.", ""]
    if generation.get("method_options"):
        options = json.dumps(generation["method_options"], indent=2, sort_keys=True)
        lines += ["Options:", "", *fenced(options, "json"), ""]
    if layout is not None:
        fmt, data_file, columns = layout
        lines += [f"This copy is in the `{fmt}` layout ({LAYOUT_NOTES.get(fmt, fmt)}): `{data_file}`, columns "
                  + ", ".join(f"`{c}`" for c in columns[:12]) + (" ..." if len(columns) > 12 else "") + ".", ""]
    if example:
        text = json.dumps(example, indent=2, ensure_ascii=False, default=str)
        lines += ["An example row:", "", *fenced(text if len(text) < 3000 else text[:3000] + "\n...", "json"), ""]
    return lines


def _verification_section(meta: VersionMetadata) -> list[str]:
    """Each verifier's pass rate over the claims it checked; rows that failed one were quarantined
    before any judge saw them."""
    if not meta.verification:
        return []
    lines = ["## How it was verified", "",
             "Rows that failed a verifier were quarantined (`verify_failed: <name>: <reason>`) before grading; "
             "each published row carries the verdicts in its `verification` column.", ""]
    lines += _table([(f"{name} (`{v.method}`) pass rate", f"{v.passed} of {v.checked} ({_fmt(v.rate)})")
                     for name, v in meta.verification.items()])
    checks = [(name, v.method, _verifier_description(v.method)) for name, v in meta.verification.items()]
    if any(about for _, _, about in checks):
        lines += ["", "What each verifier checks (and so what a published row is known to have):", "",
                  *[f"- **{name}** (`{method}`): {about or 'no description'}." for name, method, about in checks]]
    return lines + [""]


def _verifier_description(method: str | None) -> str:
    """The verifier's own one-line `description` (what it checks); '' for a name no longer registered."""
    from synthfactory.registry import VERIFIERS

    return VERIFIERS.load(method).description if method is not None and method in VERIFIERS else ""


def _grading_section(meta: VersionMetadata, grading: dict[str, Any]) -> list[str]:
    """Who graded, how the threshold was chosen, how good the judge measured, and its biases."""
    if not grading:  # a verified recipe without grading
        return ["## How it was graded", "", "No judge ran: rows were kept by verification alone "
                "(their `score` is null).", ""]
    judges = meta.judging.judges
    calibration = meta.judging.calibration
    bias = meta.judging.bias or JudgeBias()
    lines = ["## How it was graded", ""]
    if grading.get("judges"):
        lines += [f"A panel of {len(judges)} judges; the row score is their {grading.get('aggregate', 'mean')}"
                  + (" (weighted)" if grading.get("aggregate", "mean") == "mean" else "")
                  + f", and rows scoring below {grading.get('threshold')} were rejected"
                  + (" (a majority of votes needed)" if grading.get("aggregate") == "majority" else "") + ":", ""]
        lines += [f"- **{j.name}**: `{j.method}`" + (f" with `{j.model}`" if j.model else "")
                  + (", weight 0: an observer, graded and measured, without a vote" if j.weight == 0
                     else f", weight {j.weight:g}" if grading.get("aggregate", "mean") == "mean" else "")
                  for j in judges]
        lines += ["", f"Inter-judge agreement (Krippendorff's alpha, mean over batches): "
                      f"{_fmt(meta.judging.agreement)}.", ""]
    else:
        lines += [f"Judge `{meta.judge_model}` ({grading.get('method', 'json')}); rows scoring below "
                  f"{grading.get('threshold')} were rejected.", ""]
    if grading.get("rubric"):
        lines += ["Rubric of the LLM judges:", "",
                  *[f"- **{c['name']}**: {c['description']}" for c in grading["rubric"]], ""]
    said = what_a_person_would_see(calibration)
    learned = [j for j in judges if j.cross_validated]
    voting = [j for j in learned if j.weight > 0 and "real" in ((j.cross_validated or {}).get("origins") or [])]
    if said.startswith("not measured") and len(voting) == 1 and len([j for j in judges if j.weight > 0]) == 1:
        said = _learned_sentence(voting[0], grading.get("threshold"), estimate=True)
    lines += [f"**For the rows you get:** {said}.", ""]
    lines += [f"Learned judge **{j.name}** (`{j.model}`): {_learned_sentence(j, grading.get('threshold'))}."
              for j in learned]
    lines += [""] if learned else []
    if calibration:
        labels = calibration.labels
        counted = (labels.model_extra or {}).get("origins") or {}
        origins = ", ".join(f"{counted[o]} {o}" for o in ("real", "constructed", "unknown") if counted.get(o))
        lines += [f"Judge calibration `{calibration.fingerprint}` ({calibration.created}), on "
                  f"{labels.rows} labelled rows of `{labels.file}` ({labels.good} good, {labels.bad} bad; "
                  f"{origins or 'origin not recorded'}):", ""]
        lines += _table([("judge ROC-AUC", _fmt(calibration.auc)),
                         ("threshold", f"{calibration.threshold:g} ({calibration.threshold_provenance})"),
                         ("precision at the threshold", _fmt(calibration.precision)),
                         ("recall at the threshold", _fmt(calibration.recall)),
                         ("Cohen's kappa at the threshold", _fmt(calibration.kappa)),
                         *[(f"on {m.rows} {origin} rows: ROC-AUC; precision; recall at the threshold",
                            f"{_fmt(m.auc)} ({_ci(m.auc_interval)}); "
                            f"{_fmt(m.precision)} ({_ci(m.precision_interval)}); "
                            f"{_fmt(m.recall)} ({_ci(m.recall_interval)})")
                           for origin, m in calibration.by_origin.items()]])
        lines += [""]
    else:
        lines += ["No calibration of these judges was on record when this version was published "
                  "(`synthfactory calibrate RECIPE --labels FILE`): the threshold was not measured against labels.", ""]
    lines += ["Bias checks on this run's graded rows:", ""]
    lines += _table([("graded rows", bias.graded_rows if meta.judging.bias else None),
                     ("score vs response length (Spearman; verbosity bias)", _fmt(bias.verbosity_spearman)),
                     ("self-preference (generator's model as judge minus the other judges)",
                      _fmt(bias.self_preference) if bias.self_judges and bias.other_judges
                      else "n/a (needs a panel with the generator's model and another judge)"),
                     *([("position bias (mean P(first slot wins) - 0.5, pairs in both orders)",
                         _fmt(bias.position_bias)),
                        ("order consistency (verdict followed the answers, not the order)",
                         _fmt(bias.order_consistency)),
                        ("pairs checked", bias.pairs_checked)] if bias.pairs_checked else [])])
    return lines + [""]


def has_scores(meta: VersionMetadata) -> bool:
    """Whether any published synthetic row of this version has a judge score (the histogram's rows)."""
    return sum(meta.score_histogram.values()) > 0


def _score_histogram_line(meta: VersionMetadata, grading: dict[str, Any]) -> str:
    """The score histogram's plot, or one line on why there is none: a plot of no rows says nothing."""
    if has_scores(meta):
        return f"![score histogram]({SCORE_PLOT})"
    if not grading and not meta.judge_model:
        kept = "verified, not scored" if meta.verification else "not scored"
        return f"No score histogram: no judge ran, so the rows were {kept} (their `score` is null)."
    return "No score histogram: no published synthetic row of this version has a judge score."


def dataset_card(meta: VersionMetadata, rows: int, previous: list[VersionInfo], repo_id: str | None = None,
                 example: dict[str, Any] | None = None, layout: Layout | None = None) -> str:
    """README.md for one version: YAML header, then how it was made, measured and validated."""
    recipe, card, totals, cost = meta.recipe, meta.card, meta.totals, meta.cost
    gen, grading = recipe.get("generation", {}), recipe.get("grading") or {}
    seeds = recipe.get("seeds", {})
    quality = meta.quality.measured() if meta.quality else {}
    version, accepted, real = meta.version, totals.accepted, totals.real_published
    endpoints = [_public_url(u) for u in (gen.get("options") or {}).get("base_urls", [])]
    parents = [f"{meta.dataset} v{v.version}" for v in previous]
    if totals.seed_versions:
        parents.insert(0, "seeds from versions " + ", ".join(map(str, totals.seed_versions))
                       + (f" ({totals.seed_real_share:.0%} of them real)" if totals.seed_real_share else ""))
    load = f'datasets.load_dataset("{repo_id}", revision="v{version}")' if repo_id else \
        'datasets.load_dataset("PATH/TO/THIS/FOLDER")'
    lines = [
        "---",
        yaml.safe_dump(card_metadata(meta, rows, layout[1] if layout else "data/*.parquet"), sort_keys=False).rstrip(),
        "---",
        "",
        f"# {card.get('pretty_name') or meta.dataset} (version {version})",
        "",
        (recipe.get("description") or f"Synthetic data generated by synthfactory recipe `{meta.dataset}`.").strip(),
        "",
        f"This version holds **{rows}** rows: {accepted} synthetic rows this run accepted and {real} real rows "
        f"mixed in" + (f", on top of the {rows - accepted - real} rows of versions 1-{version - 1}" if previous else "")
        + ". Every row carries its lineage (seed, generator, judge, scores, run, batch, generation depth).",
        "",
        *fenced(f"import datasets\nds = {load}", "python"),
        "",
        *_method_section(meta, example, layout),
        "## How it was generated",
        "",
        *_table([("generator", f"`{meta.generator_model}` ({gen.get('engine', 'llamacpp')})"),
                 *([("endpoints", ", ".join(endpoints))] if endpoints else []),
                 ("sampling", json.dumps(gen.get("sampling", {}), sort_keys=True)),
                 ("samples per seed", gen.get("samples_per_seed", 1)),
                 ("seeds", seeds.get("from_versions") or seeds.get("from_version") or seeds.get("path")),
                 ("prompt template hash", meta.prompt_template_hash)]),
        "",
        "Prompt template:",
        "",
        *fenced(str(gen.get("prompt_template", "")).strip(), "jinja"),
        *(["", "System prompt:", "", *fenced(str(gen["system_prompt"]).strip())] if gen.get("system_prompt") else []),
        "",
        *_verification_section(meta),
        *_grading_section(meta, grading),
        "## Counts",
        "",
        *_table([("generated", totals.generated), ("accepted", accepted), ("rejected", totals.rejected),
                 ("quarantined", totals.quarantined), ("acceptance rate", meta.acceptance_rate),
                 ("mean judge score", meta.mean_score),
                 ("real rows added", real),
                 ("real share of rows added", real / (real + accepted) if real + accepted else 0.0)]),
        "",
        _score_histogram_line(meta, grading),
        "",
        "## Quality and diversity",
        "",
        *_table(sorted(quality.items())),
        "",
        f"![metrics across versions]({METRICS_PLOT})",
        "",
        "## Validation",
        "",
        f"Great Expectations suite `{meta.gate.suite}`: "
        f"{meta.gate.passed} of {len(meta.gate.outcomes)} batches passed; "
        "failing batches were quarantined whole, not published.",
        "",
        "## Cost",
        "",
        *_table([("prompt tokens", cost.prompt_tokens), ("completion tokens", cost.completion_tokens),
                 ("engine-seconds", cost.engine_seconds),
                 *([("cost", cost.money_text(cost.money))] if cost.money is not None else [])]),
        "",
        *(["Per run and per row:", "", *cost.table(), ""] if cost.per_accepted_row is not None else []),
        "## Why the run stopped",
        "",
        meta.stop.sentence(totals.batches),
        "",
        "## Lineage",
        "",
        *_table([("recipe hash", meta.recipe_hash), ("run id", meta.run_id),
                 ("parent versions", ", ".join(parents) or "none"),
                 ("Prefect flow run", meta.prefect_flow_run_id)]),
        "",
    ]
    return "\n".join(lines)


def _png(fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_plots(history: list[VersionInfo], meta: VersionMetadata, folder: Path | Location) -> list[Location]:
    """The score histogram of this version (when a row has a score) and its metrics next to every
    earlier version's, rendered to bytes and written through the store's file system (any store)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Location.of(folder)
    written = []
    if has_scores(meta):  # no judge ran (verified rows) or no row kept: no empty plot
        histogram = meta.score_histogram
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ax.bar(list(histogram), list(histogram.values()), color="#4c72b0")
        ax.set(title=f"{meta.dataset} v{meta.version}: judge scores of accepted rows", xlabel="score",
               ylabel="rows")
        fig.tight_layout()
        written.append(folder.child(SCORE_PLOT).write_bytes(_png(fig)))
        plt.close(fig)

    series: dict[str, list[tuple[int, float]]] = {}
    for info in history:
        values = {"acceptance_rate": info.metadata.acceptance_rate, "mean_score": info.metadata.mean_score,
                  **(info.metadata.quality.measured() if info.metadata.quality else {})}
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series.setdefault(key, []).append((info.version, float(value)))
    # rates and diversity live in [0, 1]; counts and scores like Vendi's get their own panel
    counts = {"rows", "max_generation_depth"}
    unit = {k: v for k, v in series.items() if k not in counts and all(0.0 <= y <= 1.0 for _, y in v)}
    other = {k: v for k, v in series.items() if k not in unit}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    colors = plt.get_cmap("tab20").colors
    for ax, group, title in ((axes[0], unit, "rates and diversity"), (axes[1], other, "counts and scores")):
        for i, (key, points) in enumerate(sorted(group.items())):
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key,
                    color=colors[i % len(colors)])
        ax.set(title=f"{meta.dataset}: {title}", xlabel="version")
        ax.set_xticks([v.version for v in history])
        if group:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    metrics_png = _png(fig)
    plt.close(fig)
    return [*written, folder.child(METRICS_PLOT).write_bytes(metrics_png)]


def _example(store: DatasetStore, version: int, method: str) -> dict[str, Any] | None:
    """The first synthetic row `version` added, as its method presents it (None if unreadable)."""
    from synthfactory.methods import METHODS, method_class

    try:
        rows = [r for r in store.rows_added_by(version).slice(0, 16).to_pylist() if r.get("source") != "real"]
    except Exception:  # a card without an example beats no card
        return None
    if not rows:
        return None
    cls = method_class(method if method in METHODS else "text")
    return cls.example(rows[0])


def write_card(store: DatasetStore, version: int, folder: Path | Location | None = None, repo_id: str | None = None,
               layout: Layout | None = None) -> Location:
    """README.md and plots of `version`, into `folder` (default `{table}/_cards/v{N}`, on the store).

    One read of the table's history serves both; versions only append, so the snapshot's row
    count is the sum of the rows each version up to this one added."""
    history = [v for v in store.versions() if v.version <= version]
    if not history or history[-1].version != version:
        store.delta_version_of(version)  # raises the one-line error naming the versions there are
    info = history[-1]
    folder = Location.of(folder) if folder is not None else store.root.child(CARDS_DIR, f"v{version}")
    rows = sum(v.rows for v in history)
    example = _example(store, version, info.metadata.method)
    write_plots(history, info.metadata, folder)  # the plots first: a card's README never names missing plots
    from synthfactory.publish.probe import probe_section  # probes recorded beside the dataset (`synthfactory probe`)

    probes = probe_section(store, version, folder, history)
    return folder.child("README.md").write_text(dataset_card(info.metadata, rows, history[:-1], repo_id, example,
                                                             layout) + (f"\n{probes}" if probes else ""))
