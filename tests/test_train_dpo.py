"""DPO on the tiny model: the chosen-over-rejected reward margin grows during training."""

from __future__ import annotations

import json
from pathlib import Path

from postmix.train.run import train

PAIRS = [("What is the capital of France?", "Paris.", "London is the capital."),
         ("How many legs does a spider have?", "Eight.", "Six legs, like an ant."),
         ("Say hello.", "Hello there!", "Goodbye."),
         ("What is twelve times twelve?", "144.", "It is 100.")]


def write_pairs(path: Path) -> Path:
    rows = [{"id": f"p{i}", "prompt": [{"role": "user", "content": q}],
             "chosen": [{"role": "assistant", "content": c}], "rejected": [{"role": "assistant", "content": r}],
             "chosen_score": 5.0, "rejected_score": 1.0, "chosen_model": "a", "rejected_model": "b",
             "judge": "{}", "source": "test", "meta": "{}"} for i, (q, c, r) in enumerate(PAIRS * 2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dpo_raises_the_reward_margin(tiny_model_dir, tmp_path):
    result = train("dpo", str(tiny_model_dir), data=write_pairs(tmp_path / "prefs.jsonl"),
                   output=tmp_path / "run",
                   config={"learning_rate": 1e-3, "max_steps": 10, "per_device_train_batch_size": 4,
                           "gradient_accumulation_steps": 1, "max_length": 64, "gradient_checkpointing": False,
                           "logging_steps": 1, "warmup_steps": 0})
    margins = [h["rewards/margins"] for h in result.log_history if "rewards/margins" in h]
    assert len(margins) == 10
    # The policy starts equal to the reference, so the first margin is exactly zero.
    assert margins[0] == 0.0
    assert sum(margins[-3:]) / 3 > sum(margins[:3]) / 3 and margins[-1] > 0
    card = result.run_card
    assert card["trl_config"]["loss_type"] == ["sigmoid_norm"] and card["trl_config"]["beta"] == 5.0
    assert card["metrics"]["rewards/margins"] == margins[-1]
