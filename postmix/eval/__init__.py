"""``postmix eval``: benchmarks from the decontamination registry, answered through the one
engine, scored by the project's verifiers, a sandbox (code) or a judge (pairwise against
reference answers), each with a bootstrap interval and a per-item file that accounts for every
item. ``run.evaluate`` is the entry point; the result is ``postmix.schemas.eval.EvalResult``."""

from postmix.eval.formats import PromptFormat
from postmix.eval.run import EvalConfig, ModelInfo, evaluate, local_pool
from postmix.eval.tasks import KINDS, SUITES

__all__ = ["KINDS", "SUITES", "EvalConfig", "ModelInfo", "PromptFormat", "evaluate",
           "local_pool"]
