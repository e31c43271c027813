"""Thin trainers over TRL: SFT, DPO and RLVR on one mix version, plus the RLVR verifiers.

::

    from postmix.train import train
    result = train("sft", "meta-llama/Llama-3.1-8B", mix="tulu3-sft@3", config="sft.yaml",
                   output="runs/sft")
    result.run_card["metrics"]

Heavy libraries (torch, transformers, trl) load only when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from postmix.train.config import (
    DPOTrainConfig,
    LoraConfig,
    RLVRTrainConfig,
    SFTTrainConfig,
    TrainConfig,
    load_config,
    parse_config,
    to_trl_args,
)

if TYPE_CHECKING:
    from postmix.train.run import TrainResult
    from postmix.train.verify import VerifyResult

__all__ = [
    "DPOTrainConfig",
    "LoraConfig",
    "RLVRTrainConfig",
    "SFTTrainConfig",
    "TrainConfig",
    "load_config",
    "parse_config",
    "to_trl_args",
    "train",
    "verify_file",
]


def train(method: str, model: str, **kwargs: Any) -> TrainResult:
    """See ``postmix.train.run.train``."""
    from postmix.train.run import train as run_train

    return run_train(method, model, **kwargs)


def verify_file(source: Any, output: Any = None, **kwargs: Any) -> VerifyResult:
    """See ``postmix.train.verify.verify_file``."""
    from postmix.train.verify import verify_file as run_verify

    return run_verify(source, output, **kwargs)
