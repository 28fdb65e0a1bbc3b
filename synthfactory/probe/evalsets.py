"""The probe's evaluation sets, each deterministic and never trained on by a recipe:

- `real_text`: the first REAL_TEXT_ITEMS paragraphs of the held-out split of `corpus:python-docs`
  (1 paragraph in 16 by a hash of its text; recipes never read it: `synthfactory.inputs.corpus`);
- `good_answers`: the `good` rows of the recipe's held-out labelled set
  (`recipes/labels/{recipe}_real_test.jsonl`, labelled by AI agents against the rubric in
  `recipes/labels/rubric.md`), as chats with the recipe's system prompt: perplexity of the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthfactory.errors import RecipeError
from synthfactory.model.lineage import stable_hash

REAL_TEXT_ITEMS = 32
LABELS_DIR = Path(__file__).resolve().parents[2] / "recipes" / "labels"


@dataclass(frozen=True)
class EvalSet:
    """Items one metric is measured on: `texts` (plain text) or `chats` (answer = the last turn)."""

    name: str
    description: str
    texts: list[str] = field(default_factory=list)
    chats: list[list[dict[str, str]]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return stable_hash(self.name, self.texts, self.chats)

    def __len__(self) -> int:
        return len(self.texts) or len(self.chats)


def real_text_eval(items: int = REAL_TEXT_ITEMS) -> EvalSet:
    """Held-out real text (raises RecipeError when the corpus is not installed: `make system-deps`)."""
    from synthfactory.inputs.corpus import HOLDOUT_BUCKETS, held_out_paragraphs

    texts = held_out_paragraphs("python-docs", "probe real text")[:items]
    return EvalSet("real_text", f"perplexity on {len(texts)} held-out paragraphs of corpus:python-docs "
                                f"(1 in {HOLDOUT_BUCKETS} by text hash, never read by a recipe)", texts=texts)


def labelled_file(recipe_name: str, labels_dir: Path = LABELS_DIR) -> Path | None:
    """`{recipe}_real_test.jsonl` for the recipe or the recipe its name extends (`quickstart_learned`
    -> `quickstart`); None when the repo has no held-out labelled set for it."""
    parts = recipe_name.split("_")
    for end in range(len(parts), 0, -1):
        path = labels_dir / f"{'_'.join(parts[:end])}_real_test.jsonl"
        if path.is_file():
            return path
    return None


def good_answers_eval(recipe_name: str, system_prompt: str | None, labels_dir: Path = LABELS_DIR) -> EvalSet | None:
    """The held-out labelled `good` answers of the recipe's task as chats, or None when there are none."""
    path = labelled_file(recipe_name, labels_dir)
    if path is None:
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    chats = [[*head, {"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["text"]}]
             for r in rows if r.get("label") == "good" and r.get("prompt") and r.get("text")]
    if not chats:
        return None
    return EvalSet("good_answers", f"answer perplexity on {len(chats)} held-out labelled good answers "
                                   f"({path.name}; labelled by AI agents against the rubric)", chats=chats)


def eval_sets(recipe: dict[str, Any], real_items: int = REAL_TEXT_ITEMS) -> tuple[list[EvalSet], dict[str, str]]:
    """The sets a version's probe measures, and why any is skipped."""
    sets: list[EvalSet] = []
    skipped: dict[str, str] = {}
    if real_items > 0:
        try:
            sets.append(real_text_eval(real_items))
        except RecipeError as exc:
            skipped["real_text"] = str(exc)
    name = recipe.get("name") or ""
    good = good_answers_eval(name, (recipe.get("generation") or {}).get("system_prompt"))
    if good is None:
        skipped["good_answers"] = f"the repo has no held-out labelled set for recipe {name!r}"
    else:
        sets.append(good)
    return sets, skipped
