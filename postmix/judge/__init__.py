"""Judged preference data: sample completions from a model pool, rate them on a rubric (or
compare two sets pairwise, in both orders), and build chosen/rejected pairs for DPO."""

from postmix.judge.compare import CompareConfig, CompareResult, compare
from postmix.judge.generate import GenerateConfig, GenerateResult, assign_models, generate
from postmix.judge.pairs import PairsConfig, PairsResult, make_pairs
from postmix.judge.rate import RateConfig, RateResult, rate
from postmix.judge.rubrics import ULTRAFEEDBACK, Aspect, Rubric, load_rubric
from postmix.llm.model_stage import failures_path

__all__ = [
    "ULTRAFEEDBACK",
    "Aspect",
    "CompareConfig",
    "CompareResult",
    "GenerateConfig",
    "GenerateResult",
    "PairsConfig",
    "PairsResult",
    "RateConfig",
    "RateResult",
    "Rubric",
    "assign_models",
    "compare",
    "failures_path",
    "generate",
    "load_rubric",
    "make_pairs",
    "rate",
]
