"""`synthfactory calibrate RECIPE --labels L`: the recipe's judges graded against labelled rows
(ROC-AUC, kappa, the threshold for a precision), or a grounded check's threshold
(`synthfactory.grading.calibration`, `synthfactory.verify.grounded`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from synthfactory.cli.common import check_models, check_store, interval, num
from synthfactory.errors import UserError


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    calibrate = sub.add_parser("calibrate", parents=[common],
                               help="measure the recipe's judges against labelled rows (ROC-AUC, kappa, threshold)")
    calibrate.add_argument("recipe")
    calibrate.add_argument("--labels", required=True,
                           help="JSONL or Parquet with prompt, text, label (good/bad) and origin (real/constructed), "
                                "or a dataset STORE/NAME whose labels table `synthfactory label` wrote")
    calibrate.add_argument("--target-precision", type=float, default=0.8,
                           help="report the lowest threshold whose accepted rows are this precise (default 0.8)")
    calibrate.add_argument("--store", default="store",
                           help="the report goes to STORE/NAME/_calibration/FINGERPRINT/ (default ./store)")
    calibrate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    calibrate.add_argument("--verifier", metavar="NAME",
                           help="pick the threshold of the recipe's grounded check NAME instead (labels need source)")
    calibrate.set_defaults(func=calibrate_command)


def calibrate_verifier(args: argparse.Namespace, loaded: Any) -> int:
    """`calibrate --verifier NAME`: the threshold of a `grounded` check from labelled rows that carry `source`."""
    from synthfactory.grading.calibration import load_labels
    from synthfactory.verify.grounded import GroundedVerifier, calibrate_threshold

    entry = next((v for v in loaded.recipe.verification if v.name == args.verifier), None)
    if entry is None or entry.method != "grounded":
        raise UserError(f"--verifier {args.verifier}: not a grounded check of {args.recipe} (only grounded has a "
                        "threshold to calibrate)")
    verifier = GroundedVerifier(GroundedVerifier.Options(**entry.options))
    report = calibrate_threshold(verifier, load_labels(args.labels).rows, args.target_precision)
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    at, wanted = report["at_threshold"], report["threshold_for_target_precision"]
    print(f"verifier {entry.name} on {report['rows']} labelled rows ({report['good']} good; {report['no_source']} "
          f"without source; {report['item_failures']} fail an item check at any threshold)")
    print(f"  at threshold {at['threshold']:.4g}: precision {num(at['precision'])}, recall {num(at['recall'])}")
    print(f"  precision >= {args.target_precision}: " + (
        f"options.threshold {wanted['threshold']:.4g} (precision {wanted['precision']:.3f}, recall "
        f"{wanted['recall']:.3f})" if wanted else "no threshold reaches it"))
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    """Grade labelled rows with the recipe's judges and write the report, scores and plots."""
    from synthfactory.grading.calibration import (
        calibration_folder,
        calibration_panel,
        grade_labels,
        learned_section,
        load_label_source,
        report_for,
        write_calibration,
    )
    from synthfactory.grading.cross_labeller import lines as cross_labeller_lines
    from synthfactory.recipe import load_recipe
    from synthfactory.run.plan import judge_specs
    from synthfactory.store import DatasetStore

    if not 0.0 < args.target_precision <= 1.0:
        raise UserError("--target-precision must be in (0, 1]")
    loaded = load_recipe(args.recipe)
    if args.verifier:
        return calibrate_verifier(args, loaded)
    grading = loaded.recipe.grading
    if grading is None:
        raise UserError(f"{args.recipe}: no grading section (verification alone keeps its rows): no judge to calibrate")
    check_store(f"{args.store.rstrip('/')}/{loaded.recipe.name}", loaded.recipe)
    labels = load_label_source(args.labels)
    rows = labels.rows
    store = DatasetStore.for_run(args.store, loaded.recipe)
    panel = calibration_panel(grading, store.root)
    _, specs = judge_specs(loaded)
    engines = list({s.key: s for s in specs if s is not None}.values())
    check_models(engines)
    from contextlib import nullcontext

    from synthfactory.engines.session import engine_session

    with (engine_session(engines, quiet=not args.debug) if engines else nullcontext()) as pool:
        chats = [(lambda requests, spec=spec: pool.chat(spec, requests)) if spec is not None and pool else None
                 for spec in specs]
        graded = grade_labels(rows, grading, chats, workers=len(pool.replicas) if pool else 1,
                              seed=loaded.recipe.generation.sampling.seed, panel=panel)
    report = report_for(graded, grading, args.target_precision, labels, loaded.recipe.name,
                        learned=learned_section(panel, rows))
    folder = write_calibration(calibration_folder(store.root, grading), report, graded)
    if args.json:
        print(json.dumps({**report, "folder": str(folder)}, default=str))
        return 0
    at, wanted = report["at_recipe_threshold"], report["threshold_for_target_precision"]
    print(f"judge {report['fingerprint']} on {report['labels']['rows']} labelled rows "
          f"({report['labels']['good']} good, {report['labels']['bad']} bad; {report['unreadable']} unreadable; "
          f"{report['labels']['quarantined']} lines quarantined)")
    for bad in report["labels"]["quarantined_rows"][:5]:
        print(f"  quarantined {bad['location']}: {bad['reason']}")
    for pair in report["labels"].get("agreement", []):
        print(f"  labellers {' and '.join(pair['labellers'])} agree on {pair['rows'] - pair['disagreements']} of "
              f"{pair['rows']} rows they share (Cohen's kappa {num(pair['kappa'])})")
    if report["labels"].get("skipped"):
        print(f"  {report['labels']['skipped']} labels were skip (not counted)")
    origins = ", ".join(f"{n} {o}" for o, n in report["labels"]["origins"].items())
    on_all = f"on all {report['labels']['rows'] - report['unreadable']} labelled rows ({origins})"
    print(f"  ROC-AUC {num(report['auc'])} ({interval(report['auc_interval'])}) {on_all}")
    print(f"  at the recipe's threshold {at['threshold']:.4g} {on_all}: accuracy {num(at['accuracy'])}, precision "
          f"{num(at['precision'])} ({interval(at['precision_interval'])}; {at['true_positives']} good of "
          f"{at['accepted']} accepted), recall {num(at['recall'])} ({interval(at['recall_interval'])}), "
          f"F1 {num(at['f1'])}, kappa {num(at['kappa'])}")
    for origin, m in report["by_origin"].items():
        rows_named = {"real": "labelled real rows (a model's outputs, labelled against a rubric)",
                      "constructed": "constructed rows (built by corruption, not a model's outputs)",
                      "unknown": "labelled rows of unknown origin"}[origin]
        print(f"  on {m['rows']} {rows_named}: base rate {num(m['base_rate'])}, ROC-AUC {num(m['auc'])} "
              f"({interval(m['auc_interval'])}); at {at['threshold']:.4g} precision {num(m['precision'])} "
              f"({interval(m['precision_interval'])}; {m['true_positives']} good of {m['accepted']} accepted), "
              f"recall {num(m['recall'])} ({interval(m['recall_interval'])})")
    if wanted:
        print(f"  precision >= {args.target_precision}: threshold {wanted['threshold']:.4g} "
              f"(precision {wanted['precision']:.3f}, recall {wanted['recall']:.3f})")
    else:
        print(f"  no threshold reaches precision {args.target_precision}")
    for title, values in (("per criterion", report["auc_per_criterion"]), ("per judge", report["auc_per_judge"]),
                          ("per kind of bad row", report["auc_per_kind"])):
        if values:
            print(f"  AUC {title}: " + ", ".join(f"{k} {num(v)}" for k, v in values.items()))
    print(f"  score vs response length (Spearman): {num(report['verbosity_spearman'])}")
    for learned in report.get("learned") or []:
        print(f"  learned judge {learned.get('judge')} (cross-validated, not its training fit): " + ", ".join(
            f"{k} {num(v) if isinstance(v, float) else v}" for k, v in learned.items()
            if k != "judge" and (isinstance(v, (int, float, str)) or v is None)))
        for line in cross_labeller_lines(learned.get("cross_labeller")):
            print(f"    {line}")
    print(f"report, per-row scores, ROC and calibration plots: {folder}")
    return 0
