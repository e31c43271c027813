"""RLVR: TRL's GRPOTrainer with one reward function that dispatches to a verifier per row.

GRPO passes every dataset column other than the prompt to reward functions as keyword
arguments, one value per completion, so the row's ``verifier``, ``ground_truth`` and
``constraints`` arrive alongside each completion. A correct completion earns ``correct_reward``
(Tulu 3: 10), anything else ``incorrect_reward`` (0). Rows are checked before training: an
unknown verifier or a malformed constraint spec stops the run with one line, instead of
silently earning zero reward for the whole run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from postmix.errors import PostmixError
from postmix.train.adapters import peft_config, quantization_config
from postmix.train.config import RLVRTrainConfig, to_trl_args
from postmix.verifiers import get_verifier, verify
from postmix.verifiers.ifeval import ConstraintSpecError, parse_spec, row_constraints


def completion_text(completion: Any) -> str:
    """A completion as text: TRL gives a string, or a list of messages for chat prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")


class VerifiableReward:
    """``reward(prompts, completions, ground_truth, verifier, constraints, **kwargs)
    -> [float]``."""

    __name__ = "verifiable_reward"  # TRL names the logged reward column after the function

    def __init__(self, correct: float = 10.0, incorrect: float = 0.0):
        self.correct = correct
        self.incorrect = incorrect

    def __call__(self, prompts: list[Any], completions: list[Any], ground_truth: list[str],
                 verifier: list[str], constraints: list[Any] | None = None,
                 **kwargs: Any) -> list[float]:
        constraints = constraints or [None] * len(completions)
        rewards: list[float] = []
        hits: dict[str, list[bool]] = defaultdict(list)
        for completion, truth, name, specs in zip(completions, ground_truth, verifier, constraints,
                                                  strict=True):
            verdict = verify(completion_text(completion), truth, name, specs)
            rewards.append(self.correct if verdict.correct else self.incorrect)
            hits[name.lower()].append(bool(verdict.correct))
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:  # per-verifier accuracy next to TRL's reward curves
            for name, values in hits.items():
                log_metric(f"verifier/{name}/accuracy", sum(values) / len(values))
        return rewards


def check_rows(dataset: Any) -> dict[str, int]:
    """Rows per verifier; a one-line error naming the first row any verifier could never score."""
    counts = Counter(v.lower() for v in dataset["verifier"])
    unknown = sorted(name for name in counts if get_verifier(name) is None)
    if unknown:
        raise PostmixError(
            f"unknown verifier(s) {', '.join(unknown)} in {sum(counts[n] for n in unknown)} "
            "rows; known: gsm8k, math, ifeval, exact, regex (fix the rows or the mix)"
        )
    if counts.get("ifeval"):
        for index, (name, truth, specs) in enumerate(
            zip(dataset["verifier"], dataset["ground_truth"], dataset["constraints"], strict=True)
        ):
            if name.lower() != "ifeval":
                continue
            try:
                for spec in row_constraints(truth, specs):
                    parse_spec(spec)
            except ConstraintSpecError as exc:
                raise PostmixError(f"row {index}: {exc} (fix the row's constraints)") from None
    return dict(sorted(counts.items()))


def build_rlvr_trainer(model: Any, dataset: Any, config: RLVRTrainConfig, output_dir: str | Path,
                       **trainer_kwargs: Any) -> Any:
    from trl import GRPOTrainer

    check_rows(dataset)
    args = to_trl_args("rlvr", config, output_dir)
    reward = VerifiableReward(config.correct_reward, config.incorrect_reward)
    return GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                       peft_config=peft_config(config.lora),
                       quantization_config=quantization_config(config.lora), **trainer_kwargs)
