"""Launching on many GPUs: write (or take) an accelerate config and re-run through
``accelerate launch``.

postmix does not manage processes itself. ``--launch accelerate`` writes
``<output>/accelerate_config.yaml`` (DDP, DeepSpeed ZeRO-2/3 or FSDP2, following TRL's shipped
configs) unless ``--accelerate-config`` names one, then runs::

    python -m accelerate.commands.launch --config_file CFG [multi-node flags] \\
        -m postmix.cli train <method> <the same arguments, single-process>

Each process then runs the ordinary single-process path, and accelerate/TRL do the distribution.
Multi-node flags (``--num-machines``, ``--machine-rank``, ``--main-process-ip``,
``--main-process-port``) go both into the generated YAML and onto the command line, where they
override a user-supplied config. ``num_processes`` is accelerate's: the total over all machines.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from postmix.errors import ConfigError

LAUNCH_ENV = "POSTMIX_LAUNCH"  # the launch settings, for the run card of each process
RUN_ID_ENV = "POSTMIX_RUN_ID"  # one run id shared by every process of a run
CONFIG_NAME = "accelerate_config.yaml"


class LaunchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["single", "accelerate"] = "single"
    num_processes: int = Field(
        1, ge=1, description="Total processes over all machines (accelerate's meaning)."
    )
    strategy: Literal["ddp", "zero2", "zero3", "fsdp"] = "ddp"
    accelerate_config: str | None = Field(
        None, description="Use this accelerate config instead of writing one."
    )
    num_machines: int = Field(1, ge=1)
    machine_rank: int = Field(0, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(None, ge=1, le=65535)
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"

    @model_validator(mode="after")
    def _consistent(self) -> LaunchConfig:
        if self.mode == "single" and (
            self.num_processes > 1 or self.strategy != "ddp" or self.num_machines > 1
        ):
            raise ValueError(
                "--num-processes, --deepspeed, --fsdp and --num-machines need --launch accelerate"
            )
        if self.machine_rank >= self.num_machines:
            raise ValueError(
                f"--machine-rank {self.machine_rank} must be below "
                f"--num-machines {self.num_machines}"
            )
        if self.num_machines > 1 and not self.main_process_ip:
            raise ValueError(
                "multi-node runs need --main-process-ip (the address of machine rank 0)"
            )
        return self


def make_launch_config(**fields: Any) -> LaunchConfig:
    from pydantic import ValidationError

    try:
        return LaunchConfig(**fields)
    except ValidationError as exc:
        raise ConfigError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


_BASE = {
    "compute_environment": "LOCAL_MACHINE",
    "debug": False,
    "downcast_bf16": "no",
    "main_training_function": "main",
    "rdzv_backend": "static",
    "same_network": True,
    "tpu_env": [],
    "tpu_use_cluster": False,
    "tpu_use_sudo": False,
    "use_cpu": False,
}


def accelerate_config(launch: LaunchConfig) -> dict[str, Any]:
    """The accelerate config dict for ``launch``
    (the keys of TRL's ``accelerate_configs/*.yaml``)."""
    config: dict[str, Any] = {
        **_BASE,
        "mixed_precision": launch.mixed_precision,
        "num_machines": launch.num_machines,
        "machine_rank": launch.machine_rank,
        "num_processes": launch.num_processes,
    }
    if launch.main_process_ip:
        config["main_process_ip"] = launch.main_process_ip
    if launch.main_process_port:
        config["main_process_port"] = launch.main_process_port
    if launch.strategy == "ddp":
        config.update(distributed_type="MULTI_GPU", gpu_ids="all")
    elif launch.strategy in ("zero2", "zero3"):
        zero3 = launch.strategy == "zero3"
        deepspeed = {
            "deepspeed_multinode_launcher": "standard",
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            # build the model sharded: an 8B model never sits whole on one GPU
            "zero3_init_flag": zero3,
            "zero_stage": 3 if zero3 else 2,
        }
        if zero3:
            deepspeed["zero3_save_16bit_model"] = True  # save a loadable model, not shards
        config.update(distributed_type="DEEPSPEED", deepspeed_config=deepspeed)
    else:
        config.update(distributed_type="FSDP", fsdp_config={
            "fsdp_activation_checkpointing": False,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",  # one loadable checkpoint at the end
            "fsdp_version": 2,
        })
    return config


def write_accelerate_config(launch: LaunchConfig, output_dir: str | Path) -> Path:
    """The config file the launch uses: the user's, or a generated one in the output folder."""
    if launch.accelerate_config:
        path = Path(launch.accelerate_config)
        if not path.is_file():
            raise ConfigError(f"no such accelerate config: {path}")
        return path
    path = Path(output_dir) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(accelerate_config(launch), sort_keys=True))
    return path


def launch_command(
    launch: LaunchConfig, config_file: str | Path, postmix_args: list[str]
) -> list[str]:
    """``accelerate launch`` running ``python -m postmix.cli <postmix_args>`` in every process."""
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_file),
        "--num_processes",
        str(launch.num_processes),
        "--num_machines",
        str(launch.num_machines),
        "--machine_rank",
        str(launch.machine_rank),
    ]
    if launch.main_process_ip:
        command += ["--main_process_ip", launch.main_process_ip]
    if launch.main_process_port:
        command += ["--main_process_port", str(launch.main_process_port)]
    return command + ["-m", "postmix.cli", *postmix_args]


def launch_environment(launch: LaunchConfig, run_id: str) -> dict[str, str]:
    return {
        **os.environ,
        LAUNCH_ENV: json.dumps(launch.model_dump(mode="json")),
        RUN_ID_ENV: run_id,
    }


def run_launch(command: list[str], env: dict[str, str]) -> int:
    """Run the launcher in the foreground; its exit status is the run's."""
    return subprocess.run(command, env=env, check=False).returncode


def launch_from_environment() -> dict[str, Any] | None:
    """Inside a launched process: the launch settings the parent recorded, for the run card."""
    raw = os.environ.get(LAUNCH_ENV)
    if not raw:
        return None
    launch = json.loads(raw)
    launch["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    return launch


def train_arguments(method: str, *, model: str, output: str | Path, mix: str | None = None,
                    data: str | Path | None = None, config: str | Path | None = None,
                    home: str | Path | None = None, max_steps: int | None = None) -> list[str]:
    """The single-process ``postmix`` arguments every launched process runs."""
    args = ["train", method, "--model", str(model), "--output", str(output)]
    for flag, value in (("--mix", mix), ("--data", data), ("--config", config), ("--home", home),
                        ("--max-steps", max_steps)):
        if value is not None:
            args += [flag, str(value)]
    return args


def relaunch(method: str, launch: LaunchConfig, *, output: str | Path, dry_run: bool = False,
             **train_args: Any) -> tuple[list[str], Path, int | None]:
    """Write the accelerate config, build the command and (unless ``dry_run``) run it.

    Returns the command, the config file and the exit status (None on a dry run).
    """
    from postmix.train.runcard import new_run_id

    config_file = write_accelerate_config(launch, output)
    command = launch_command(
        launch, config_file, train_arguments(method, output=output, **train_args)
    )
    if dry_run:
        return command, config_file, None
    if launch.strategy in ("zero2", "zero3") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            f"--deepspeed {launch.strategy} needs DeepSpeed on every machine: "
            "pip install deepspeed (it builds CUDA ops; --dry-run shows the launch command "
            "without it)"
        )
    return command, config_file, run_launch(command, launch_environment(launch, new_run_id(method)))
