"""IFEval scoring placeholder (replaced when the verifiers' IFEval benchmark API lands)."""
