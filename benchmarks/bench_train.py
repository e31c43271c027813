"""SFT throughput: postmix defaults (packing, padding-free) vs TRL defaults without packing.

    python benchmarks/bench_train.py                # GPU: random-initialised ~0.5B Llama-style model
    python benchmarks/bench_train.py --tiny         # CPU smoke check (tiny model, a few steps)

Both sides train the same random-initialised model on the same synthetic conversations (lengths
drawn log-normally, as chat data is skewed), in the same process, one after the other:

* ``postmix``: ``postmix.train.sft.build_sft_trainer`` with postmix's SFT config: best-fit
  packing into ``max_length`` sequences, padding-free batches, assistant-only loss.
* ``trl`` (baseline): ``trl.SFTTrainer`` with TRL's own defaults and ``packing=False``: each batch
  padded to its longest conversation.

Everything else is equal: bf16 on GPU, gradient checkpointing (both defaults), AdamW, batch sizes
chosen so a step holds about ``max_length`` real tokens on both sides. Throughput counts real
(non-padding) tokens per second over the timed steps (after ``--warmup`` steps). MFU is
6 * parameters * tokens/s over the device's peak dense bf16 FLOP/s (``--peak-tflops``; H100/H200
SXM: 989); attention FLOPs are left out, so it is a lower bound.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "model", "data", "training", "answer", "question", "sea", "blue", "capital", "france", "paris", "spider", "legs", "eight", "poem", "summary", "translate", "morning", "help", "number", "twelve", "judge", "score", "curation", "mixture", "version", "seed", "reproducible", "assistant", "user"]

# ~0.5B parameters without the (small) embedding: Qwen-0.5B-like depth and width, head_dim 64.
BIG = {"hidden_size": 1280, "intermediate_size": 3456, "num_hidden_layers": 24,
       "num_attention_heads": 20, "num_key_value_heads": 4}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2}


def build_model(folder: Path, dims: dict, max_length: int) -> Path:
    """A random Llama with the tiny fixture's chat tokenizer (it marks assistant turns)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from postmix.testing.tiny_model import build_tiny_model

    tok_dir = build_tiny_model(folder / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.model_max_length = max_length
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_length,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **dims)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = folder / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def conversations(n: int, mean_words: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        q_len, a_len = np.maximum(3, rng.lognormal(np.log(mean_words / 4), 0.8, size=2)).astype(int)
        q = " ".join(rng.choice(WORDS, size=q_len))
        a = " ".join(rng.choice(WORDS, size=3 * a_len))
        rows.append({"id": f"c{i}", "messages": [{"role": "user", "content": q},
                                                 {"role": "assistant", "content": a}],
                     "source": "bench", "meta": "{}"})
    return rows


class Meter:
    """Counts real tokens per collated batch and times optimiser steps."""

    def __init__(self, collator, warmup: int):
        import torch

        self.collator, self.warmup, self.torch = collator, warmup, torch
        self.tokens: list[int] = []
        self.padded: list[int] = []
        self.step_ends: list[float] = []

    def __call__(self, examples):
        batch = self.collator(examples)
        if "attention_mask" in batch:
            self.tokens.append(int(batch["attention_mask"].sum()))
        else:  # padding-free: one row, every position a real token
            self.tokens.append(int(batch["input_ids"].numel()))
        self.padded.append(int(batch["input_ids"].numel()))
        return batch

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class _Timer(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if meter.torch.cuda.is_available():
                    meter.torch.cuda.synchronize()
                meter.step_ends.append(time.perf_counter())

        return _Timer()

    def result(self) -> dict:
        # step_ends[k] closes step k+1; timed window: steps warmup+1 .. last.
        steps = len(self.step_ends) - self.warmup
        seconds = self.step_ends[-1] - self.step_ends[self.warmup - 1]
        tokens = sum(self.tokens[self.warmup:self.warmup + steps])
        padded = sum(self.padded[self.warmup:self.warmup + steps])
        return {"steps": steps, "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
                "padding_fraction": 1 - tokens / padded if padded else 0.0}


def run_side(name: str, model_dir: Path, dataset, args, on_gpu: bool) -> dict:
    import torch
    from trl import SFTConfig, SFTTrainer

    common = {"max_steps": args.warmup + args.steps, "logging_steps": 10**6, "save_strategy": "no",
              "report_to": "none", "dataloader_num_workers": 0, "seed": 0}
    out = Path(tempfile.mkdtemp(prefix=f"bench-train-{name}-"))
    attn = {"model_init_kwargs": {"attn_implementation": args.attn}} if args.attn else {}
    if name == "postmix":
        from postmix.train.config import parse_config
        from postmix.train.sft import build_sft_trainer

        config = parse_config("sft", {
            "max_length": args.max_length, "per_device_train_batch_size": 1,
            "gradient_accumulation_steps": 1, "bf16": on_gpu, "gradient_checkpointing": True,
            "max_steps": common["max_steps"], "logging_steps": common["logging_steps"], "seed": 0,
            "save_strategy": "no", "trl": {"dataloader_num_workers": 0, **attn}})
        trainer = build_sft_trainer(str(model_dir), dataset, config, out)
    else:
        cfg = SFTConfig(output_dir=str(out), packing=False, max_length=args.max_length,
                        per_device_train_batch_size=args.unpacked_batch, bf16=on_gpu, use_cpu=not on_gpu,
                        **common, **attn)
        trainer = SFTTrainer(model=str(model_dir), args=cfg, train_dataset=dataset)
    meter = Meter(trainer.data_collator, args.warmup)
    trainer.data_collator = meter
    trainer.add_callback(meter.callback())
    trainer.train()
    params = sum(p.numel() for p in trainer.model.parameters())
    embedding = trainer.model.get_input_embeddings().weight.numel()
    result = {"side": name, **meter.result(), "params": params, "non_embedding_params": params - embedding}
    del trainer
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke check with a tiny model.")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per side.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--unpacked-batch", type=int, default=None,
                        help="Conversations per step for the unpacked side (default: ~max_length tokens).")
    parser.add_argument("--attn", default=None, help="attn_implementation (e.g. flash_attention_2, sdpa).")
    parser.add_argument("--peak-tflops", type=float, default=None, help="Peak dense bf16 TFLOP/s of the device.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    import datasets
    import torch

    on_gpu = torch.cuda.is_available() and not args.tiny
    args.steps = args.steps or (5 if args.tiny else 30)
    args.max_length = args.max_length or (512 if args.tiny else 4096)
    mean_words = 12 if args.tiny else 220
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        model_dir = build_model(Path(tmp), TINY if args.tiny else BIG, args.max_length)
        rows = conversations(3000 if not args.tiny else 400, mean_words)
        dataset = datasets.Dataset.from_list(rows).select_columns(["messages"])
        if args.unpacked_batch is None:  # about max_length real tokens per step, like one pack
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(model_dir)
            texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows[:200]]
            sample = [min(len(tok(t, add_special_tokens=False)["input_ids"]), args.max_length) for t in texts]
            args.unpacked_batch = max(1, round(args.max_length / float(np.mean(sample))))
        results = [run_side("trl", model_dir, dataset, args, on_gpu),
                   run_side("postmix", model_dir, dataset, args, on_gpu)]

    device = torch.cuda.get_device_name() if on_gpu else "cpu"
    peak = args.peak_tflops or (989.0 if on_gpu and ("H100" in device or "H200" in device) else None)
    print(f"device: {device}; max_length {args.max_length}; unpacked batch {args.unpacked_batch}; "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    for r in results:
        mfu = 6 * r["non_embedding_params"] * r["tokens_per_s"] / (peak * 1e12) if peak else math.nan
        r["mfu"] = mfu
        print(f"  {r['side']:8s} {r['tokens_per_s']:>12,.0f} tokens/s  padding {r['padding_fraction']:6.1%}  "
              f"params {r['params'] / 1e6:,.0f}M  MFU {'n/a' if math.isnan(mfu) else f'{mfu:.1%}'}")
    ratio = results[1]["tokens_per_s"] / results[0]["tokens_per_s"]
    print(f"postmix / trl-unpacked throughput: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "ratio": ratio, "results": results}, indent=2))


if __name__ == "__main__":
    main()
