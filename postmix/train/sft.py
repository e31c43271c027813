"""SFT: TRL's SFTTrainer on conversations, loss on assistant tokens only, sequences packed.

``assistant_only_loss`` uses the chat template's ``{% generation %}`` markers to label only the
assistant's tokens; every other position gets -100. Packing is TRL's best-fit-decreasing, which
keeps conversations whole and turns on padding-free batches (position ids restart at each
conversation, so attention does not cross conversation boundaries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from postmix.train.adapters import peft_config, quantization_config
from postmix.train.config import SFTTrainConfig, to_trl_args


def build_sft_trainer(model: Any, dataset: Any, config: SFTTrainConfig, output_dir: str | Path,
                      **trainer_kwargs: Any) -> Any:
    """A ready ``trl.SFTTrainer``; ``model`` is a path, a Hub name or a loaded model."""
    from trl import SFTTrainer

    args = to_trl_args("sft", config, output_dir)
    return SFTTrainer(model=model, args=args, train_dataset=dataset,
                      peft_config=peft_config(config.lora),
                      quantization_config=quantization_config(config.lora), **trainer_kwargs)
