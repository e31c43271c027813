"""Train configs: Tulu 3 defaults reach TRL's configs unchanged, the pass-through is checked
against TRL's fields, and mistakes are one-line errors before any model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import trl

from postmix.errors import ConfigError
from postmix.train.adapters import quantization_config
from postmix.train.config import LoraConfig, load_config, parse_config, to_trl_args

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "train"


def test_sft_defaults_reach_trl(tmp_path):
    args = to_trl_args("sft", parse_config("sft"), tmp_path)
    assert isinstance(args, trl.SFTConfig)
    assert (args.learning_rate, args.num_train_epochs, args.max_length) == (5e-6, 2, 4096)
    assert args.packing and args.assistant_only_loss
    assert args.warmup_steps == 0.03 and args.lr_scheduler_type == "linear"
    # CPU machine: no bf16, CPU device, no trackers, no remote code.
    assert (args.bf16, args.use_cpu, args.report_to, args.trust_remote_code) == (False, True, [], False)


def test_dpo_defaults_are_length_normalised_tulu3(tmp_path):
    args = to_trl_args("dpo", parse_config("dpo"), tmp_path)
    assert isinstance(args, trl.DPOConfig)
    assert args.loss_type == ["sigmoid_norm"]
    assert (args.beta, args.learning_rate, args.num_train_epochs, args.max_length) == (5.0, 5e-7, 1, 2048)


def test_rlvr_defaults(tmp_path):
    config = parse_config("rlvr")
    assert (config.correct_reward, config.incorrect_reward) == (10.0, 0.0)
    args = to_trl_args("rlvr", config, tmp_path)
    assert isinstance(args, trl.GRPOConfig)
    assert (args.beta, args.temperature, args.max_completion_length) == (0.05, 1.0, 2048)
    assert not hasattr(args, "correct_reward")


def test_pass_through_reaches_trl_and_unknown_fields_fail(tmp_path):
    config = parse_config("sft", {"trl": {"packing_strategy": "wrapped", "eval_steps": 7}})
    args = to_trl_args("sft", config, tmp_path)
    assert (args.packing_strategy, args.eval_steps) == ("wrapped", 7)
    with pytest.raises(ConfigError, match=r"trl\.packing_stratgy is not a field of trl\.SFTConfig"):
        parse_config("sft", {"trl": {"packing_stratgy": "bfd"}})
    with pytest.raises(ConfigError, match="beta"):
        parse_config("sft", {"trl": {"beta": 0.1}})  # a DPO field is not an SFT field
    with pytest.raises(ConfigError, match="at the top level"):
        parse_config("dpo", {"trl": {"beta": 0.1}})
    with pytest.raises(ConfigError, match="learning_rat"):
        parse_config("dpo", {"learning_rat": 1e-6})


def test_trl_rejections_and_cpu_limits_are_one_line(tmp_path):
    for method, fields in (("dpo", {"trl": {"loss_weights": [0.5, 0.5]}}), ("sft", {"bf16": True})):
        with pytest.raises(ConfigError) as info:
            to_trl_args(method, parse_config(method, fields), tmp_path)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="QLoRA .*needs a CUDA GPU"):
        quantization_config(LoraConfig(load_in_4bit=True))
    assert quantization_config(LoraConfig()) is None


def test_yaml_configs_and_bad_files(tmp_path):
    for method in ("sft", "dpo", "rlvr"):
        config = load_config(method, RECIPES / f"{method}.yaml")
        to_trl_args(method, config, tmp_path)  # every shipped recipe is valid for TRL
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("sft", bad)
    bad.write_text("learning_rate: -1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config("sft", bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("sft", tmp_path / "missing.yaml")


@pytest.mark.parametrize("steps", [0, -2])
def test_max_steps_is_positive_or_minus_one(steps):
    with pytest.raises(ConfigError, match="max_steps must be a positive number"):
        parse_config("sft", {"max_steps": steps})
    assert parse_config("sft", {"max_steps": 3}).max_steps == 3
