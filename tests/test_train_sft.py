"""SFT on the tiny model: the loss falls on memorisable data, only assistant tokens carry labels,
and the run writes a model and a complete run card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postmix.errors import PostmixError
from postmix.train.config import parse_config
from postmix.train.data import load_training_data
from postmix.train.run import train
from postmix.train.sft import build_sft_trainer

QA = [("What is the capital of France?", "Paris."),
      ("How many legs does a spider have?", "Eight."),
      ("Translate good morning into German.", "Guten Morgen."),
      ("What is twelve times twelve?", "144.")]


def write_sft(path: Path, n: int = 8) -> Path:
    rows = []
    for i in range(n):
        q, a = QA[i % len(QA)]
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q},
                    {"role": "assistant", "content": a}]
        if i % 2:  # multi-turn: a user turn between two assistant turns must stay unlabelled
            messages += [{"role": "user", "content": "Thank you!"},
                         {"role": "assistant", "content": "Have a nice day!"}]
        rows.append({"id": f"s{i}", "messages": messages, "source": "test", "meta": "{}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


FAST = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 96,
        "gradient_checkpointing": False, "logging_steps": 1, "warmup_steps": 0,
        "trl": {"dataloader_num_workers": 0}}


def expected_labels(ids: list[int], tokenizer) -> list[int]:
    """Labels from the template's construction: after "<|assistant|>" and its newline, up to and
    including "<|end|>"; everything else -100."""
    assistant = tokenizer.convert_tokens_to_ids("<|assistant|>")
    newline = tokenizer.convert_tokens_to_ids("Ċ")
    end = tokenizer.eos_token_id
    labels, inside = [], False
    for position, token in enumerate(ids):
        if inside:
            labels.append(token)
            inside = token != end
        else:  # the newline after the role token is still prompt; labels start after it
            labels.append(-100)
            inside = position > 0 and ids[position - 1] == assistant and token == newline
    return labels


def test_labels_are_minus_100_exactly_off_assistant_tokens(tiny_model_dir, tmp_path):
    data = load_training_data("sft", data=write_sft(tmp_path / "sft.jsonl"))
    trainer = build_sft_trainer(str(tiny_model_dir), data.dataset, parse_config("sft", FAST), tmp_path / "o")
    assert trainer.args.packing and trainer.args.assistant_only_loss
    packed = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    assert sum(len(p["seq_lengths"]) for p in packed) == 8  # every conversation kept, none split
    batch = trainer.data_collator(packed)
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    assert labels == expected_labels(ids, trainer.processing_class)
    text = trainer.processing_class.decode([t for t, lab in zip(ids, labels, strict=True) if lab != -100])
    assert "Have a nice day!" in text and "Thank you" not in text and "capital" not in text


def test_sft_lowers_loss_and_writes_run_card(tiny_model_dir, tmp_path):
    data = write_sft(tmp_path / "sft.jsonl")
    out = tmp_path / "run"
    result = train("sft", str(tiny_model_dir), data=data, output=out,
                   config={**FAST, "learning_rate": 3e-3, "max_steps": 24})
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(losses) == 24
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3

    card = json.loads((out / "run_card.json").read_text())
    assert card == json.loads(json.dumps(result.run_card))
    assert card["status"] == "completed" and card["method"] == "sft"
    assert card["model"] == str(tiny_model_dir) and card["mix"] is None
    assert card["data"]["path"] == str(data) and card["data"]["rows"] == 8
    assert len(card["content_hash"]) == 24
    assert card["config"]["learning_rate"] == 3e-3 and card["config"]["packing"] is True
    assert card["trl_config"]["max_steps"] == 24 and card["trl_config"]["assistant_only_loss"] is True
    assert set(card["versions"]) >= {"postmix", "trl", "transformers", "torch"}
    assert card["started_at"] <= card["finished_at"]
    assert card["metrics"]["loss"] == losses[-1] and "train_runtime" in card["metrics"]
    assert (out / "config.json").exists() and (out / "tokenizer_config.json").exists()


def test_wrong_kind_of_data_is_a_one_line_error(tmp_path):
    rlvr = tmp_path / "rlvr.jsonl"
    rlvr.write_text(json.dumps({"id": "r", "prompt": [{"role": "user", "content": "1+1?"}], "ground_truth": "2",
                                "verifier": "gsm8k", "constraints": None, "source": "t", "meta": "{}"}) + "\n")
    with pytest.raises(PostmixError, match="holds rlvr rows but `train sft` needs sft rows"):
        load_training_data("sft", data=rlvr)
    with pytest.raises(PostmixError, match="exactly one of --mix"):
        load_training_data("sft")


def test_packed_conversations_do_not_attend_to_each_other(tiny_model_dir, tmp_path):
    """Padding-free packing is only sound if attention restarts at every conversation: the logits of
    a packed batch (as TRL's loss computes them, use_cache=False) equal each conversation's own."""
    import torch

    data = load_training_data("sft", data=write_sft(tmp_path / "sft.jsonl"))
    trainer = build_sft_trainer(str(tiny_model_dir), data.dataset, parse_config("sft", FAST), tmp_path / "o")
    example = trainer.train_dataset[0]
    assert len(example["seq_lengths"]) >= 2
    batch = trainer.data_collator([example])
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[0]
        start = 0
        for length in example["seq_lengths"]:
            alone = model(input_ids=batch["input_ids"][:, start:start + length], use_cache=False).logits[0]
            torch.testing.assert_close(packed[start:start + length], alone, atol=1e-4, rtol=1e-4)
            start += length


def test_unloadable_model_is_one_line_and_leaves_a_failed_card(tiny_model_dir, tmp_path):
    data = write_sft(tmp_path / "sft.jsonl")
    with pytest.raises(PostmixError, match="no such model folder"):  # caught before any download
        train("sft", str(tmp_path / "no-such-model"), data=data, output=tmp_path / "run", config=FAST)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # a folder that is not a model
    out = tmp_path / "run2"
    with pytest.raises(PostmixError, match="cannot set up sft on model.*Unrecognized model") as info:
        train("sft", str(broken), data=data, output=out, config=FAST)
    assert "\n" not in str(info.value)
    card = json.loads((out / "run_card.json").read_text())
    assert card["status"] == "failed" and "Unrecognized model" in card["error"]
