"""`synthfactory improve RECIPE --rounds N`: the self-learning loop in this process (no Prefect; the
`improve` deployment runs it as a flow), and `synthfactory models STORE/NAME`: the models it stored."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from synthfactory.errors import UserError


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def rounds_table(records: list[Any], title: str) -> str:
    """The held-out accuracy table, one line per round and what its accuracy is made of below it
    (plain text: it reads the same in a terminal, a log and a pipe)."""
    head = f"{'round':>5}  {'held-out pass@1 [95% CI]':<26}{'vs current, pts [95% CI]':<26}" \
           f"{'real-text ppl':<18}{'promoted':<10}trained on"
    lines = [title, head, "-" * len(head)]
    for r in records:
        h, p, t = r.held_out, r.perplexity, r.paired
        acc = f"{_pct(h.pass_at_1)} [{_pct(h.interval[0])}, {_pct(h.interval[1])}]" if h and h.interval else (
            _pct(h.pass_at_1) if h else "-")
        vs = (f"{t.delta * 100:+.1f} [{t.interval[0] * 100:+.1f}, {t.interval[1] * 100:+.1f}]"
              if t and t.interval else "-")
        ppl = f"{p.value:.2f} ({p.relative:+.1%})" if p else "-"
        trained = ("the base model" if r.round == 0
                   else f"versions {r.trained_on_versions}: {r.training_rows} verified rows + {r.real_rows} real")
        lines.append(f"{r.round:>5}  {acc:<26}{vs:<26}{ppl:<18}{'yes' if r.promoted else 'no':<10}{trained}")
        if h and h.breakdown:
            lines.append(" " * 7 + ", ".join(f"{k.replace('_', ' ')} {_pct(v)}" for k, v in h.breakdown.items())
                         + f"; {sum(r.seconds.values()):.0f} s")
    return "\n".join(lines)


def improve_command(args: argparse.Namespace) -> int:
    import logging

    from synthfactory.engines.session import ray_session
    from synthfactory.improve.loop import ImproveLoop, options_for
    from synthfactory.probe.command import _quiet_libraries

    options = options_for(args.size, held_out=args.held_out, samples=args.samples, candidates=args.candidates,
                          epochs=args.epochs, real_mix=args.real_mix, seed=args.seed,
                          keep_going=args.keep_going or None)
    _quiet_libraries()
    logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def say(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    loop = ImproveLoop(args.recipe, args.store, options, progress=say)
    with ray_session(quiet=not args.debug):
        records = loop.run(args.rounds)
    state = loop.state()
    if args.json:
        print(json.dumps({"dataset": loop.dataset.uri, "stopped_because": state.stopped_because,
                          "current_round": state.current_round,
                          "rounds": [r.model_dump(mode="json", exclude={"held_out": {"per_item"}}) for r in records]}))
        return 0
    print(rounds_table(records, f"{loop.dataset.uri}: held-out accuracy per round"))
    print(f"model in use: round {state.current_round}"
          + (f"; stopped: {state.stopped_because}" if state.stopped_because else ""))
    return 0


def models_command(args: argparse.Namespace) -> int:
    from synthfactory.improve.loop import read_models

    uri, records, state = read_models(args.dataset)
    if not records:
        raise UserError(f"{uri}: no models stored (the loop `synthfactory improve RECIPE` stores them)")
    if args.json:
        print(json.dumps([r.model_dump(mode="json", exclude={"held_out": {"per_item"}}) for r in records]))
        return 0
    print(rounds_table(records, f"{uri}: models of the self-learning loop"))
    for r in records:
        if r.files.get("gguf"):
            print(f"round {r.round}: {uri}/_models/{r.files['gguf']}")
    print(f"model in use: round {state.current_round}"
          + (f"; stopped: {state.stopped_because}" if state.stopped_because else ""))
    return 0


def add_improve_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    from synthfactory.improve.loop import SIZES

    improve = sub.add_parser("improve", parents=[common],
                             help="the self-learning loop: generate, verify, fine-tune, measure on held-out seeds, "
                                  "round after round")
    improve.add_argument("recipe", help="a verified recipe (a verification section: math, code)")
    improve.add_argument("--rounds", type=int, default=2,
                         help="rounds to run in all (finished ones are kept; default 2)")
    improve.add_argument("--store", default="store",
                         help="folder or object-store URI holding datasets (default ./store)")
    improve.add_argument("--size", default="small", choices=list(SIZES),
                         help="tiny: a check in minutes; small: the CPU bench (100 held-out items); default: a GPU")
    improve.add_argument("--held-out", type=int, default=None, help="held-out seeds (fixed at the first round)")
    improve.add_argument("--samples", type=int, default=None, help="answers sampled per held-out item (k)")
    improve.add_argument("--candidates", type=int, default=None, help="answers generated per round")
    improve.add_argument("--epochs", type=float, default=None, help="epochs over the training rows each round")
    improve.add_argument("--real-mix", type=float, default=None,
                         help="share of training examples that are real corpus paragraphs (default 0.25)")
    improve.add_argument("--seed", type=int, default=None, help="seed of sampling, data order and adapters")
    improve.add_argument("--keep-going", action="store_true",
                         help="run every round asked even past one not promoted (the next generates with the "
                              "model in use); default: stop there")
    improve.add_argument("--json", action="store_true", help="print the round records as one JSON object")
    improve.set_defaults(func=improve_command)
    models = sub.add_parser("models", parents=[common], help="the models the self-learning loop stored for a dataset")
    models.add_argument("dataset", help="STORE/NAME of a dataset the loop ran on")
    models.add_argument("--json", action="store_true", help="print the model records as JSON")
    models.set_defaults(func=models_command)
