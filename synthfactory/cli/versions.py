"""`synthfactory versions STORE/NAME`: the published versions of a dataset, with what each cost."""

from __future__ import annotations

import argparse
import json
from typing import Any

from synthfactory.cli.common import num
from synthfactory.errors import UserError


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    versions = sub.add_parser("versions", parents=[common], help="list the published versions of a dataset")
    versions.add_argument("dataset", help="DIR/NAME")
    versions.add_argument("--json", action="store_true")
    versions.set_defaults(func=versions_command)


def version_row(info: Any) -> dict[str, Any]:
    """One version as `versions --json` lists it."""
    from synthfactory.model.cost import PerRow

    meta, cost = info.metadata, info.metadata.cost
    per_accepted, per_rejected = cost.per_accepted_row or PerRow(), cost.per_rejected_row or PerRow()
    return {
        "version": info.version, "rows": info.rows, "created": info.created.isoformat(timespec="seconds"),
        "run_id": meta.run_id, "accepted": meta.totals.accepted, "rejected": meta.totals.rejected,
        "quarantined": meta.totals.quarantined, "stopped": meta.stop.stopped,
        "prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
        "engine_seconds": cost.engine_seconds, "money": cost.money, "currency": cost.currency,
        "tokens_per_accepted_row": per_accepted.tokens,
        "engine_seconds_per_accepted_row": per_accepted.engine_seconds,
        "money_per_accepted_row": per_accepted.money,
        "tokens_per_rejected_row": per_rejected.tokens,
        "engine_seconds_per_rejected_row": per_rejected.engine_seconds,
        "money_per_rejected_row": per_rejected.money,
        "verify_pass_rates": {name: v.rate for name, v in meta.verification.items()},
    }


def versions_command(args: argparse.Namespace) -> int:
    from synthfactory.model.cost import PerRow, money_text
    from synthfactory.store import DatasetStore

    infos = DatasetStore(args.dataset).versions()
    if not infos:
        raise UserError(f"{args.dataset}: no published dataset here (run a recipe first)")
    if args.json:
        print(json.dumps([version_row(v) for v in infos]))
        return 0
    header = (f"{'version':>7} {'rows':>6} {'created':<25} {'run id':<32} {'accepted':>8} {'quarant.':>8} "
              f"{'stopped':<15} {'tokens':>8} {'engine s':>9} {'money':>10} {'tok/row':>8} {'eng s/row':>9} "
              f"{'money/row':>10}")
    print(header)
    for info in infos:
        meta, cost = info.metadata, info.metadata.cost
        per = cost.per_accepted_row or PerRow()
        print(f"{info.version:>7} {info.rows:>6} {info.created.isoformat(timespec='seconds'):<25} {meta.run_id:<32} "
              f"{meta.totals.accepted:>8} {meta.totals.quarantined:>8} {meta.stop.stopped or '-':<15} "
              f"{cost.tokens:>8} {num(cost.engine_seconds):>9} {money_text(cost.money, None, 4, '-'):>10} "
              f"{num(per.tokens):>8} {num(per.engine_seconds):>9} {money_text(per.money, None, 6, '-'):>10}")
    print("(per row: the run's whole spend over the rows it published; money only where the recipe's card "
          "gives a price)")
    return 0
