"""Quality and model-collapse guards: heuristics, dedup, decontamination, diversity, drift."""
