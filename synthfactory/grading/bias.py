"""Judge bias checks reported with every version (commit metadata and dataset card).

- verbosity: Spearman correlation of the row score with the response length over every graded
  row of the run (accepted or not; only graded rows carry a score). A judge that rewards length
  for its own sake shows a strong positive value.
- position (preference pairs): the pair compared with the chosen answer first, then second.
- self-preference (panels only): on the same rows, the mean score of the judges that run the
  generator's own model minus the mean score of the other judges. Judges on different scales
  differ for that reason too: read it next to the calibration's per-judge AUC, and across versions.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from synthfactory.grading.calibration import spearman
from synthfactory.recipe import LLM_JUDGES, Recipe


def graded_rows(states: list[Any]) -> list[dict[str, Any]]:
    """Every synthetic row of the run that a judge scored, whatever happened to it afterwards."""
    return [r for s in states for rows in (s.rows, s.rejected, s.quarantined) for r in rows
            if r.get("source") == "synthetic" and r.get("score") is not None]


def judge_bias(recipe: Recipe, rows: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [float(r["score"]) for r in rows]
    lengths = [float(r.get("text_chars") or 0) for r in rows]
    out: dict[str, Any] = {"graded_rows": len(rows), "verbosity_spearman": _round(spearman(scores, lengths)),
                           "self_preference": None, "self_judges": [], "other_judges": [],
                           **position_bias(rows)}
    assert recipe.grading is not None  # asked only for a recipe with judges (`judging_metadata`)
    if recipe.grading.judges is None:
        return out
    generator = (recipe.generation.engine, recipe.generation.model)
    selves = [j.name for j in recipe.grading.panel
              if j.method in LLM_JUDGES and (j.engine or generator[0], j.model or generator[1]) == generator]
    others = [j.name for j in recipe.grading.panel if j.name not in selves]
    out.update(self_judges=selves, other_judges=others)
    if not selves or not others:
        return out
    gaps = []
    for row in rows:
        try:
            by_judge = json.loads(row["scores"])
            gaps.append(np.mean([by_judge[j]["score"] for j in selves])
                        - np.mean([by_judge[j]["score"] for j in others]))
        except (TypeError, KeyError, ValueError):
            continue  # a row settled without every judge's score (e.g. a preference pair): not comparable
    out["self_preference"] = _round(float(np.mean(gaps))) if gaps else None
    return out


def position_bias(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Preference pairs compared in both orders: how far the first slot's mean win probability is
    from 0.5 (0: no position bias; > 0: the judge favours whatever comes first), and the share of
    pairs whose verdict followed the answers rather than their order."""
    checked = [r for r in rows if r.get("judge_first_slot_p") is not None]
    if not checked:
        return {"position_bias": None, "order_consistency": None, "pairs_checked": 0}
    return {"position_bias": _round(float(np.mean([r["judge_first_slot_p"] for r in checked])) - 0.5),
            "order_consistency": _round(float(np.mean([bool(r["judge_order_consistent"]) for r in checked]))),
            "pairs_checked": len(checked)}


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None
