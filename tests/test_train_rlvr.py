"""RLVR: the reward function dispatches per row by verifier (10 / 0), bad rows stop the run
before training, and GRPO runs end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from postmix.errors import PostmixError
from postmix.train.rlvr import VerifiableReward, check_rows, completion_text
from postmix.train.run import train

NO_COMMAS = json.dumps({"type": "no_commas"})
LOWER = json.dumps({"type": "lowercase"})


def said(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_reward_dispatches_per_row_by_verifier():
    rows = [  # (completion, ground truth, verifier, constraints, expected reward)
        (said("She earns 9 * 2 = 18 dollars.\n#### 18"), "18", "gsm8k", None, 10.0),
        (said("The answer is 17."), "18", "gsm8k", None, 0.0),
        (said("So the probability is $\\boxed{0.5}$."), "\\frac{1}{2}", "math", None, 10.0),
        (said("So the probability is $\\boxed{0.25}$."), "\\frac{1}{2}", "MATH", None, 0.0),
        (said("a calm sea at dawn"), "", "ifeval", [NO_COMMAS, LOWER], 10.0),
        (said("A calm sea, at dawn"), "", "ifeval", [NO_COMMAS, LOWER], 0.0),
        (said("Paris"), "Paris", "exact", None, 10.0),
        ("yes", "(yes|no)", "regex", None, 10.0),  # plain-text completions work too
    ]
    logged: dict[str, float] = {}
    reward = VerifiableReward(correct=10.0, incorrect=0.0)
    completions, truths, verifiers, constraints, expected = map(list, zip(*rows, strict=True))
    got = reward(prompts=[[{"role": "user", "content": "q"}]] * len(rows), completions=completions,
                 ground_truth=truths, verifier=verifiers, constraints=constraints,
                 log_metric=logged.__setitem__, trainer_state=None)
    assert got == expected
    assert logged == {"verifier/gsm8k/accuracy": 0.5, "verifier/math/accuracy": 0.5,
                      "verifier/ifeval/accuracy": 0.5, "verifier/exact/accuracy": 1.0,
                      "verifier/regex/accuracy": 1.0}
    assert VerifiableReward(correct=1.0, incorrect=-1.0)(
        prompts=["q"], completions=["#### 3"], ground_truth=["4"], verifier=["gsm8k"]) == [-1.0]


def test_completion_text_keeps_only_assistant_content():
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"},
                            {"role": "assistant", "content": "b"}]) == "ab"


def rlvr_rows() -> list[dict]:
    rows = [{"id": f"g{i}", "prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "ground_truth": str(2 * i), "verifier": "gsm8k", "constraints": None} for i in range(3)]
    rows.append({"id": "if", "prompt": [{"role": "user", "content": "Write a line. Do not use commas."}],
                 "ground_truth": json.dumps([{"type": "no_commas"}]), "verifier": "ifeval",
                 "constraints": [NO_COMMAS]})
    return [{**r, "source": "test", "meta": "{}"} for r in rows]


def test_bad_rows_stop_the_run_before_training():
    good = rlvr_rows()
    assert check_rows(datasets.Dataset.from_list(good)) == {"gsm8k": 3, "ifeval": 1}
    with pytest.raises(PostmixError, match="unknown verifier.*chess"):
        check_rows(datasets.Dataset.from_list(good + [{**good[0], "verifier": "chess"}]))
    bad_spec = {**good[3], "constraints": [json.dumps({"type": "word_count", "num_words": 5})]}
    with pytest.raises(PostmixError, match="row 4: constraint 'word_count': relation: Field required"):
        check_rows(datasets.Dataset.from_list(good + [bad_spec]))


def test_rlvr_runs_end_to_end(tiny_model_dir, tmp_path):
    data = tmp_path / "rlvr.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rlvr_rows()))
    result = train("rlvr", str(tiny_model_dir), data=data, output=tmp_path / "run",
                   config={"learning_rate": 1e-4, "max_steps": 2, "per_device_train_batch_size": 4,
                           "num_generations": 4, "max_completion_length": 8,
                           "gradient_checkpointing": False, "logging_steps": 1})
    steps = [h for h in result.log_history if "reward" in h]
    assert len(steps) == 2
    for step in steps:  # every reward is 0 or 10, so the mean is a multiple of 10 / 4
        assert step["rewards/verifiable_reward/mean"] * 4 / 10 == pytest.approx(
            round(step["rewards/verifiable_reward/mean"] * 4 / 10))
    card = json.loads((Path(tmp_path) / "run" / "run_card.json").read_text())
    assert card["status"] == "completed" and card["method"] == "rlvr"
    assert card["config"]["correct_reward"] == 10.0 and card["trl_config"]["num_generations"] == 4
    assert "reward" in card["metrics"]
