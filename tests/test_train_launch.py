"""``--launch accelerate``: the generated accelerate config and command line, never launched."""

from __future__ import annotations

import sys

import pytest
import yaml
from typer.testing import CliRunner

from postmix.cli import app
from postmix.errors import ConfigError
from postmix.train.launch import (
    CONFIG_NAME,
    LaunchConfig,
    accelerate_config,
    launch_command,
    make_launch_config,
    relaunch,
)


@pytest.mark.parametrize(
    ("strategy", "distributed_type", "stage"),
    [("ddp", "MULTI_GPU", None), ("zero2", "DEEPSPEED", 2), ("zero3", "DEEPSPEED", 3), ("fsdp", "FSDP", None)],
)
def test_accelerate_config_per_strategy(strategy, distributed_type, stage):
    config = accelerate_config(LaunchConfig(mode="accelerate", num_processes=8, strategy=strategy))
    assert config["distributed_type"] == distributed_type
    assert (config["num_processes"], config["num_machines"], config["machine_rank"]) == (8, 1, 0)
    assert config["mixed_precision"] == "bf16" and config["use_cpu"] is False
    if stage:
        assert config["deepspeed_config"]["zero_stage"] == stage
        assert config["deepspeed_config"]["zero3_init_flag"] is (stage == 3)
    if strategy == "fsdp":
        assert config["fsdp_config"]["fsdp_version"] == 2


def test_relaunch_writes_config_and_builds_command_without_running(tmp_path):
    launch = make_launch_config(mode="accelerate", num_processes=16, strategy="zero3", num_machines=2,
                                machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29500)
    cmd, config_file, status = relaunch("dpo", launch, output=tmp_path / "run", dry_run=True,
                                        model="org/model", mix="prefs@3", config="dpo.yaml")
    assert status is None and config_file == tmp_path / "run" / CONFIG_NAME
    written = yaml.safe_load(config_file.read_text())
    assert written == accelerate_config(launch)
    assert (written["num_machines"], written["machine_rank"], written["main_process_ip"],
            written["main_process_port"]) == (2, 1, "10.0.0.1", 29500)
    assert cmd == [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
                   "--num_processes", "16", "--num_machines", "2", "--machine_rank", "1",
                   "--main_process_ip", "10.0.0.1", "--main_process_port", "29500",
                   "-m", "postmix.cli", "train", "dpo", "--model", "org/model",
                   "--output", str(tmp_path / "run"), "--mix", "prefs@3", "--config", "dpo.yaml"]


def test_user_accelerate_config_is_used_as_is(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("distributed_type: MULTI_GPU\n")
    launch = make_launch_config(mode="accelerate", num_processes=4, accelerate_config=str(own))
    cmd, config_file, _ = relaunch("sft", launch, output=tmp_path / "out", dry_run=True,
                                   model="m", data="d.jsonl")
    assert config_file == own and not (tmp_path / "out" / CONFIG_NAME).exists()
    assert cmd[cmd.index("--config_file") + 1] == str(own)
    assert launch_command(launch, own, ["x"])[-3:] == ["-m", "postmix.cli", "x"]


def test_inconsistent_launch_flags_are_one_line_errors():
    with pytest.raises(ConfigError, match="need --launch accelerate"):
        make_launch_config(num_processes=4)
    with pytest.raises(ConfigError, match="machine-rank 2 must be below --num-machines 2"):
        make_launch_config(mode="accelerate", num_machines=2, machine_rank=2, main_process_ip="h")
    with pytest.raises(ConfigError, match="main-process-ip"):
        make_launch_config(mode="accelerate", num_machines=2)


def test_cli_dry_run_prints_the_command(tmp_path):
    result = CliRunner().invoke(app, [
        "train", "sft", "--model", "m", "--data", "d.jsonl", "--output", str(tmp_path / "o"),
        "--launch", "accelerate", "--num-processes", "2", "--deepspeed", "zero2", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "accelerate.commands.launch" in result.output
    written = yaml.safe_load((tmp_path / "o" / CONFIG_NAME).read_text())
    assert written["deepspeed_config"]["zero_stage"] == 2 and written["num_processes"] == 2
    bad = CliRunner().invoke(app, ["train", "sft", "--model", "m", "--data", "d.jsonl", "--output",
                                   str(tmp_path / "o"), "--num-processes", "2"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)


def test_a_deepspeed_launch_without_deepspeed_is_a_one_line_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    launch = make_launch_config(mode="accelerate", num_processes=2, strategy="zero2")
    with pytest.raises(ConfigError, match="needs DeepSpeed"):
        relaunch("sft", launch, output=tmp_path / "run", model="m", mix="x@1")
    # a dry run only prints the command, so it needs nothing
    assert relaunch("sft", launch, output=tmp_path / "run", dry_run=True, model="m", mix="x@1")[2] is None
