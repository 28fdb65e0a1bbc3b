"""The self-learning loop, measured: `synthfactory improve` on recipes/math.yaml and recipes/code.yaml,
3 rounds each (every round run even past one not promoted, so the whole curve shows; the table says
where the loop itself would have stopped), held-out pass@1 per round with its 95% interval, what
the accuracy is made of, real-text perplexity, and the wall time per round.

    .venv/bin/python bench/self_improve.py --recipe math          # the CPU size (`--size small`)
    .venv/bin/python bench/self_improve.py --recipe code --samples 1   # code answers are 2x longer: k=1 on a CPU
    .venv/bin/python bench/self_improve.py --recipe math --size default   # a GPU (all weights) or more time
    .venv/bin/python bench/self_improve.py --recipe math --store S --ablate-real 2   # after a run kept in S

`--ablate-real N` retrains rounds 1..N of a finished run (kept with --store) with no real text mixed
in, on the same published versions (the same verified rows), and compares them with the run's own
rounds: what the real text does to held-out accuracy and to real-text perplexity.

Writes bench/self_improve_{recipe}.json and .png. The store is a temporary folder (kept with --store).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key, value in {"DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0",
                   "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(key, value)

RECIPES = {"math": ROOT / "recipes" / "math.yaml", "code": ROOT / "recipes" / "code.yaml"}


def plot(records: list[dict], recipe: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    rounds = [r["round"] for r in records]
    acc = [r["held_out"]["pass_at_1"] for r in records]
    lo = [r["held_out"]["pass_at_1"] - r["held_out"]["interval"][0] for r in records]
    hi = [r["held_out"]["interval"][1] - r["held_out"]["pass_at_1"] for r in records]
    left.errorbar(rounds, acc, yerr=[lo, hi], marker="o", capsize=4)
    for r in records:
        if r["round"] and not r["promoted"]:
            left.annotate("not promoted", (r["round"], r["held_out"]["pass_at_1"]), textcoords="offset points",
                          xytext=(4, 6), fontsize=8)
    left.set(title=f"{recipe}: held-out pass@1 (95% CI)", xlabel="round", xticks=rounds)
    ppl = [(r["round"], r["perplexity"]["relative"]) for r in records if r.get("perplexity")]
    right.plot([x for x, _ in ppl], [y * 100 for _, y in ppl], marker="o")
    right.axhline(5, color="red", linestyle="--", label="collapse guard (+5%)")
    right.set(title="real-text perplexity vs base (%)", xlabel="round", xticks=rounds)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=list(RECIPES), default="math")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", default="small")
    parser.add_argument("--samples", type=int, default=None, help="answers per held-out item (default: the size's)")
    parser.add_argument("--store", default=None, help="keep the datasets and models here (default: a temp folder)")
    parser.add_argument("--out", default=None, help="JSON and PNG path stem (default bench/self_improve_{recipe})")
    parser.add_argument("--ablate-real", type=int, default=None, metavar="N",
                        help="retrain rounds 1..N of the run kept in --store without real text, and compare")
    args = parser.parse_args()
    if args.ablate_real:
        ablate_real(args)
        return

    from synthfactory.engines.session import ray_session
    from synthfactory.improve.command import rounds_table
    from synthfactory.improve.loop import ImproveLoop, options_for
    from synthfactory.probe.command import _quiet_libraries

    _quiet_libraries()
    options = options_for(args.size, keep_going=True, samples=args.samples)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sf-self-improve-") as tmp:
        store = args.store or tmp
        loop = ImproveLoop(RECIPES[args.recipe], store, options,
                           progress=lambda line: print(f"[{time.perf_counter() - started:6.0f} s] {line}", flush=True))
        with ray_session(quiet=True):
            records = loop.run(args.rounds)
        state = loop.state()
        runs = [loop.round_run(r.round) for r in records[1:]]
    minutes = (time.perf_counter() - started) / 60
    print()
    print(rounds_table(records, f"{args.recipe}: size {args.size} ({options}), {minutes:.1f} min"))
    print()
    for r, run in zip(records[1:], runs, strict=True):
        print(f"round {r.round}: generated {run.generated if run else '-'}, verified {run.accepted if run else '-'}; "
              f"seconds {r.seconds}; {r.why}")
    refused = next((r for r in records[1:] if not r.promoted), None)
    if refused is None:
        print(f"\nevery round was promoted: the loop as shipped ends with round {records[-1].round}'s model")
    else:
        in_use = max(r.round for r in records if r.promoted and r.round < refused.round)
        print(f"\nthe loop as shipped stops at round {refused.round} (not promoted: {refused.why}) with round "
              f"{in_use}'s model in use; run on (--keep-going), it ends with round {state.current_round}'s")
    first, last = records[0].held_out, records[-1].held_out
    verdicts = [f"round {r.round} vs round {r.paired.against_round}: {r.paired.delta * 100:+.1f} pts "
                f"[{r.paired.interval[0] * 100:+.1f}, {r.paired.interval[1] * 100:+.1f}] "
                f"{'beyond the noise' if r.paired.better else 'within the noise'}"
                for r in records[1:] if r.paired and r.paired.interval]
    print("; ".join(verdicts))
    if first and last:
        print(f"held-out pass@1: round 0 {first.pass_at_1:.1%} -> round {records[-1].round} {last.pass_at_1:.1%}")
    out = Path(args.out) if args.out else ROOT / "bench" / f"self_improve_{args.recipe}"
    dumped = [r.model_dump(mode="json") for r in records]
    out.with_suffix(".json").write_text(json.dumps({
        "recipe": args.recipe, "size": args.size, "options": options.__dict__, "minutes": round(minutes, 1),
        "stopped_because": state.stopped_because, "current_round": state.current_round,
        "runs": [run.model_dump(mode="json") if run else None for run in runs], "rounds": dumped}, indent=1))
    plot(dumped, args.recipe, out.with_suffix(".png"))


def ablate_real(args: argparse.Namespace) -> None:
    """Rounds 1..N again, trained on the same versions without real text (a copy of the store with the
    rounds' model records removed, so only training and measuring run), paired with the run's own."""
    import shutil

    from synthfactory.improve.heldout import paired_test
    from synthfactory.improve.loop import ImproveLoop, options_for

    if not args.store:
        raise SystemExit("--ablate-real needs --store: the store a finished bench run was kept in")
    source = Path(args.store)
    target = source.with_name(source.name + "-noreal")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    models = target / args.recipe / "_models"
    for folder in models.glob("round*"):
        k = int(folder.name.removeprefix("round"))
        if k > args.ablate_real:
            shutil.rmtree(folder)
        elif k > 0:
            for name in ("model.json", "README.md", "model.gguf", "adapter", "weights"):
                path = folder / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    (models / "loop.json").unlink(missing_ok=True)
    options = options_for(args.size, keep_going=True, samples=args.samples, real_mix=0.0)
    started = time.perf_counter()
    ablated = ImproveLoop(RECIPES[args.recipe], target, options,
                          progress=lambda line: print(f"[{time.perf_counter() - started:6.0f} s] {line}", flush=True))
    own = ImproveLoop(RECIPES[args.recipe], source, options)
    rows = []
    for record in ablated.run(args.ablate_real)[1:]:
        mixed = own.model_record(record.round)
        assert mixed is not None and mixed.held_out and record.held_out and record.perplexity and mixed.perplexity
        test = paired_test(record.held_out.per_item, mixed.held_out.per_item, against_round=record.round)
        lo, hi = test.interval or [test.delta, test.delta]
        rows.append({"round": record.round, "with_real": mixed.model_dump(mode="json"),
                     "without_real": record.model_dump(mode="json"), "accuracy_with_minus_without": test.model_dump()})
        print(f"round {record.round}: pass@1 with real {mixed.held_out.pass_at_1:.1%} ({mixed.steps} steps), without "
              f"{record.held_out.pass_at_1:.1%} ({record.steps} steps): {test.delta * 100:+.1f} pts "
              f"[{lo * 100:+.1f}, {hi * 100:+.1f}]; real-text perplexity "
              f"{mixed.perplexity.relative:+.1%} with, {record.perplexity.relative:+.1%} without; without real "
              f"text: {'promoted' if record.promoted else 'not promoted: ' + record.why}")
    out = Path(args.out) if args.out else ROOT / "bench" / f"self_improve_{args.recipe}_noreal"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
