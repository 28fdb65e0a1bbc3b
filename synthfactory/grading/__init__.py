"""Judges, panels, calibration and bias checks.

- `llm`: LLM judges over a rubric (`json` grades, `logprobs` P(yes)).
- `signals`: judges that are not LLMs (`relevance`, `form`).
- `panel`: several judges per row, their aggregate and their agreement.
- `calibration`: a judge measured against labelled rows (`synthfactory calibrate`).
- `bias`: verbosity and self-preference checks reported per version.
"""

from synthfactory.grading.llm import (
    JsonJudge,
    JudgementError,
    JudgeScore,
    LogprobJudge,
    judge_schema,
    make_judge,
    p_yes,
    parse_judgement,
)
from synthfactory.grading.panel import Panel, PanelResult, krippendorff_alpha

__all__ = ["JsonJudge", "JudgementError", "JudgeScore", "LogprobJudge", "Panel", "PanelResult", "judge_schema",
           "krippendorff_alpha", "make_judge", "p_yes", "parse_judgement"]
