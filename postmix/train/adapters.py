"""LoRA and QLoRA through peft: the ``peft_config`` and ``quantization_config`` TRL trainers
take."""

from __future__ import annotations

import importlib.util
from typing import Any

from postmix.errors import ConfigError
from postmix.train.config import LoraConfig, cuda_available


def peft_config(lora: LoraConfig | None) -> Any:
    if lora is None:
        return None
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules, task_type="CAUSAL_LM")


def quantization_config(lora: LoraConfig | None) -> Any:
    """NF4 with double quantisation and bf16 compute, the QLoRA paper's setting;
    None without QLoRA."""
    if lora is None or not lora.load_in_4bit:
        return None
    if not cuda_available():
        raise ConfigError("QLoRA (lora.load_in_4bit) needs a CUDA GPU; set load_in_4bit: false "
                          "to train plain LoRA on this machine")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("QLoRA (lora.load_in_4bit) needs bitsandbytes: pip install bitsandbytes")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
