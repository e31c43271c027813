"""DPO: TRL's DPOTrainer on conversational preference pairs (``prompt``, ``chosen``, ``rejected``).

The default loss is TRL's ``sigmoid_norm``: the DPO loss on per-token average log-ratios, which
is Tulu 3's length-normalised DPO (it removes the pull towards longer chosen answers). With LoRA
the reference model is the base model with the adapter switched off, so no copy is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postmix.train.adapters import peft_config, quantization_config
from postmix.train.config import DPOTrainConfig, to_trl_args


def build_dpo_trainer(model: Any, dataset: Any, config: DPOTrainConfig, output_dir: str | Path,
                      **trainer_kwargs: Any) -> Any:
    from trl import DPOTrainer

    args = to_trl_args("dpo", config, output_dir)
    return DPOTrainer(model=model, args=args, train_dataset=dataset,
                      peft_config=peft_config(config.lora),
                      quantization_config=quantization_config(config.lora), **trainer_kwargs)
