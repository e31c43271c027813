"""Training configs: the knobs users change most, with Tulu 3 8B defaults, plus a TRL pass-through.

Each config maps one-to-one onto TRL's ``SFTConfig`` / ``DPOConfig`` / ``GRPOConfig``: the
fields below carry TRL's own names, and ``trl:`` holds any other TRL (or ``TrainingArguments``)
field, checked against the TRL config so a typo fails before a model is loaded.

Defaults follow the published Tulu 3 8B recipe (Lambert et al., 2024, and open-instruct's
``docs/tulu3.md`` launch commands), adapted where TRL differs:

- SFT: lr 5e-6, 2 epochs, max length 4096, linear schedule with 3% warmup, no weight decay.
- DPO: length-normalised DPO (TRL's ``sigmoid_norm``, open-instruct's ``dpo_norm``), beta 5,
  lr 5e-7, 1 epoch, max length 2048, linear schedule with 10% warmup.
- RLVR: verifiable reward 10 for a correct answer, 0 otherwise; KL beta 0.05, lr 3e-7,
  temperature 1.0, 2048 completion tokens. Tulu 3 optimised it with PPO and a value model;
  postmix uses TRL's GRPO, which needs neither a value nor a reward model.

Batch: per device 1 with 16 accumulation steps is Tulu's effective batch of 128 on 8 GPUs; on
one GPU raise ``gradient_accumulation_steps`` (or the per-device batch) to keep 128.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from postmix import yamlfile
from postmix.errors import ConfigError

Method = Literal["sft", "dpo", "rlvr"]


class LoraConfig(BaseModel):
    """LoRA adapters through peft; ``load_in_4bit`` makes it QLoRA
    (needs a GPU and bitsandbytes)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="Adapter rank; 16 is peft's common starting point.")
    alpha: int = Field(32, ge=1, description="Scaling numerator; 2*r keeps the update scale at 2.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field(
        "all-linear", description="Modules to adapt; 'all-linear' is what QLoRA found works best.")
    load_in_4bit: bool = Field(False, description="QLoRA: NF4-quantise the frozen base model.")


class TrainConfig(BaseModel):
    """Fields shared by every method. Names are TRL's, so docs and muscle memory carry over."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(gt=0)
    num_train_epochs: float = Field(gt=0)
    max_steps: int = Field(-1, description="Stop after this many optimiser steps (-1: use epochs).")

    per_device_train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(16, ge=1)
    max_length: int | None = Field(ge=1)
    lr_scheduler_type: str = "linear"
    warmup_steps: float = Field(0.0, ge=0, description="A fraction of all steps when < 1.")
    weight_decay: float = 0.0
    gradient_checkpointing: bool = Field(
        True, description="Trades ~30% compute for activation memory."
    )
    bf16: bool | None = Field(None, description="None: bf16 when the GPU supports it, fp32 on CPU.")
    seed: int = 42
    logging_steps: float = 10
    save_strategy: str = Field(
        "no", description="'no' saves only the final model (with the run card)."
    )
    lora: LoraConfig | None = None
    trust_remote_code: bool = Field(
        False, description="Run a Hub model's own Python code (off: safe)."
    )
    trl: dict[str, Any] = Field(default_factory=dict, description="Any other TRL config field.")

    # Fields that do not go to TRL as they are.
    POSTMIX_ONLY: ClassVar[tuple[str, ...]] = ("lora", "trl", "trust_remote_code")

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(
                "max_steps must be a positive number of steps, or -1 to train for num_train_epochs"
            )
        return value

    @field_validator("trl")
    @classmethod
    def _no_shadowing(cls, value: dict[str, Any]) -> dict[str, Any]:
        shadowed = sorted(set(value) & set(cls.model_fields))
        if shadowed:
            raise ValueError(
                f"set {', '.join(shadowed)} at the top level of the config, not under trl:"
            )
        return value


class SFTTrainConfig(TrainConfig):
    """Supervised fine-tuning on the assistant tokens of conversations, packed."""

    learning_rate: float = Field(5e-6, gt=0, description="Tulu 3 8B SFT.")
    num_train_epochs: float = Field(2, gt=0, description="Tulu 3: a third epoch did not help.")
    max_length: int | None = Field(4096, ge=1, description="Tulu 3 8B SFT max sequence length.")
    warmup_steps: float = Field(0.03, ge=0, description="Tulu 3: 3% linear warmup.")
    packing: bool = Field(
        True, description="Best-fit packing, padding-free: no compute on padding."
    )
    assistant_only_loss: bool = Field(
        True, description="Loss on assistant tokens only (needs {% generation %} in the template).")


class DPOTrainConfig(TrainConfig):
    """Direct preference optimisation, length-normalised as in Tulu 3."""

    learning_rate: float = Field(5e-7, gt=0, description="Tulu 3 8B DPO.")
    num_train_epochs: float = Field(1, gt=0)
    max_length: int | None = Field(2048, ge=1, description="Tulu 3 8B DPO max sequence length.")
    warmup_steps: float = Field(0.1, ge=0, description="Tulu 3: 10% linear warmup.")
    beta: float = Field(5.0, gt=0, description="Tulu 3's beta for the length-normalised loss; "
                        "for plain 'sigmoid' DPO use ~0.1.")
    loss_type: str = Field(
        "sigmoid_norm", description="TRL loss; sigmoid_norm = length-normalised DPO."
    )


class RLVRTrainConfig(TrainConfig):
    """GRPO with rewards from verifiers, chosen per row by its ``verifier`` column."""

    learning_rate: float = Field(3e-7, gt=0, description="Tulu 3 8B RLVR.")
    num_train_epochs: float = Field(1, gt=0)
    max_length: int | None = Field(None, description="Unused by GRPO; see max_completion_length.")
    per_device_train_batch_size: int = Field(8, ge=1, description="Completions per device step.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    beta: float = Field(0.05, ge=0, description="KL coefficient; Tulu 3 8B RLVR used 0.05.")
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the GRPO group).")
    max_completion_length: int = Field(2048, ge=1, description="Tulu 3 8B RLVR response length.")
    temperature: float = Field(1.0, gt=0, description="Tulu 3 sampled at 1.0.")
    correct_reward: float = Field(
        10.0, description="Tulu 3's verifiable reward for a correct answer."
    )
    incorrect_reward: float = 0.0

    POSTMIX_ONLY: ClassVar[tuple[str, ...]] = TrainConfig.POSTMIX_ONLY + (
        "correct_reward", "incorrect_reward", "max_length")


CONFIGS: dict[str, type[TrainConfig]] = {
    "sft": SFTTrainConfig,
    "dpo": DPOTrainConfig,
    "rlvr": RLVRTrainConfig,
}


def _trl_class(method: str) -> type:
    import trl

    return {"sft": trl.SFTConfig, "dpo": trl.DPOConfig, "rlvr": trl.GRPOConfig}[method]


def trl_field_names(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(_trl_class(method)) if f.init}


def _one_line(exc: ValidationError, origin: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{origin}: {where}: {first['msg']}{more}"


def parse_config(
    method: str, data: dict[str, Any] | None = None, *, origin: str = "config"
) -> TrainConfig:
    """Validate a config dict for ``method``; errors become one-line ConfigErrors."""
    cls = CONFIGS[method]
    try:
        config = cls.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, origin) + " (fix the config file)") from None
    unknown = sorted(set(config.trl) - trl_field_names(method))
    if unknown:
        raise ConfigError(
            f"{origin}: trl.{unknown[0]} is not a field of trl.{_trl_class(method).__name__}"
            + (f" (nor {', '.join(unknown[1:])})" if len(unknown) > 1 else "")
            + "; check the spelling against TRL's docs")
    return config


def load_config(method: str, path: str | Path | None) -> TrainConfig:
    """The config in a YAML file (or the defaults when ``path`` is None)."""
    if path is None:
        return parse_config(method)
    data = yamlfile.read_yaml(path, "config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config fields")
    return parse_config(method, data, origin=str(path))


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def to_trl_args(method: str, config: TrainConfig, output_dir: str | Path) -> Any:
    """The TRL config for ``config``: its fields, the pass-through, and run-time settings."""
    fields = config.model_dump(exclude=set(config.POSTMIX_ONLY))
    on_gpu = cuda_available()
    if fields["bf16"] is None:
        import torch

        fields["bf16"] = on_gpu and torch.cuda.is_bf16_supported()
    if fields["bf16"] and not on_gpu:
        raise ConfigError("bf16 needs a GPU; set bf16: false to train on CPU")
    fields.update(
        output_dir=str(output_dir),
        use_cpu=not on_gpu,
        # postmix writes its own run card; trackers are opt-in through trl: {report_to: ...}.
        report_to="none",
        trust_remote_code=config.trust_remote_code,
    )
    if "activation_checkpointing" in trl_field_names(method):
        # transformers 5 renamed it; passing the new name avoids a deprecation warning per run.
        fields["activation_checkpointing"] = fields.pop("gradient_checkpointing")
    fields.update(config.trl)
    try:
        return _trl_class(method)(**fields)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"TRL rejected the config: {str(exc).splitlines()[0]}") from None
