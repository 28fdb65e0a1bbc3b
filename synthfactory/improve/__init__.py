"""The self-learning loop: `synthfactory improve RECIPE --rounds N` (`loop.ImproveLoop`), its held-out
split and measures (`heldout`), and the model cards (`card`). The records live in
`synthfactory.model.improve`; torch, transformers and TRL load on first use."""

from synthfactory.model.improve import LoopState, ModelRecord, RoundRun, SeedSplit

__all__ = ["LoopState", "ModelRecord", "RoundRun", "SeedSplit"]
