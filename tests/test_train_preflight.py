"""The SFT pre-flight (``train check``, and the start of ``train sft``): the template TRL will use,
the trained tokens and what ``max_length`` cuts, per source, agreeing with what TRL's own
``SFTTrainer`` builds; and a one-line stop when assistant-only loss cannot work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postmix.cli import app
from postmix.train.config import parse_config
from postmix.train.data import load_training_data
from postmix.train.preflight import PreflightError, preflight
from postmix.train.run import train
from postmix.train.sft import build_sft_trainer

# The tiny model's template without its {% generation %} markers: nothing marks the assistant.
PLAIN_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|' + message.role + '|>\\n' + message.content"
    " + '<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
FIX = re.compile(r"assistant_only_loss: false .*chat_template_path.*\{% generation %\}")


def write_rows(path: Path, prefix: str, n: int, repeat: int = 1) -> Path:
    rows = [{"id": f"{prefix}-{i}", "source": prefix, "meta": "{}", "messages": [
        {"role": "user", "content": f"What is {i} plus one? " * repeat},
        {"role": "assistant", "content": f"It is {i + 1}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def with_template(tiny_model_dir: Path, folder: Path, template: str) -> Path:
    from transformers import AutoTokenizer

    shutil.copytree(tiny_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def mixed_rows(tmp_path):
    """Short rows from source 'short', long ones (prompt far past max_length 48) from 'long'."""
    short = write_rows(tmp_path / "short.jsonl", "short", 6)
    long = write_rows(tmp_path / "long.jsonl", "long", 4, repeat=12)
    both = tmp_path / "both.jsonl"
    lines = short.read_text().splitlines() + long.read_text().splitlines()
    both.write_text("\n".join(lines[0::2] + lines[1::2]) + "\n")
    return both


def test_numbers_agree_with_the_labels_trl_builds(tiny_model_dir, mixed_rows, tmp_path):
    """Unpacked, TRL truncates to max_length and drops rows left with no label: the pre-flight
    predicts the labelled tokens and the rows kept exactly."""
    config = parse_config("sft", {"max_length": 48, "packing": False, "trl": {"dataloader_num_workers": 0},
                                  "per_device_train_batch_size": 2, "gradient_checkpointing": False})
    data = load_training_data("sft", data=mixed_rows)
    report = preflight(str(tiny_model_dir), data.dataset, config, sources=data.sources, ids=data.ids)
    trainer = build_sft_trainer(str(tiny_model_dir), data.dataset, config, tmp_path / "o")
    labels = [row["labels"] for row in trainer.train_dataset]
    totals = report.totals()
    assert totals["trained_tokens"] == sum(sum(t != -100 for t in row) for row in labels)
    assert totals["rows_checked"] - totals["rows_untrained"] == len(labels)
    by_source = {s.source: s for s in report.sources}
    assert list(by_source) == ["short", "long"]  # in order of first appearance
    assert by_source["short"].rows == 6 and by_source["short"].rows_cut == 0
    assert by_source["long"].rows == 4 and by_source["long"].rows_cut == 4
    assert by_source["long"].rows_untrained == 4  # the prompt alone fills max_length
    assert by_source["short"].trained_share > 0 and by_source["long"].trained_tokens_cut > 0
    assert report.template_source == "model" and report.stop_token_trained is True


def test_the_example_marks_exactly_the_assistant_tokens(tiny_model_dir, tmp_path):
    data = load_training_data("sft", data=write_rows(tmp_path / "a.jsonl", "a", 3))
    report = preflight(str(tiny_model_dir), data.dataset, parse_config("sft", {}), sources=data.sources,
                       ids=data.ids, rows_per_source=2)
    (source,) = report.sources
    assert (source.rows, source.rows_checked) == (3, 2)
    example = source.example
    assert example.id == "a-0"
    assert [text for text, state in example.spans if state == "trained"] == ["It is 1.<|end|>"]
    assert "What is 0 plus one?" in "".join(text for text, state in example.spans if state == "prompt")
    page = report.html()
    assert "<mark>It is 1.&lt;|end|&gt;</mark>" in page and "<|user|>" not in page


def test_a_template_without_generation_markers_stops_check_and_sft(tiny_model_dir, tmp_path):
    model = with_template(tiny_model_dir, tmp_path / "plain-model", PLAIN_TEMPLATE)
    data = write_rows(tmp_path / "a.jsonl", "a", 4)
    checked = subprocess.run([sys.executable, "-m", "postmix.cli", "train", "check", "--model", str(model),
                              "--data", str(data)], capture_output=True, text=True)
    assert checked.returncode == 2 and checked.stdout == ""
    lines = [line for line in checked.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in checked.stderr, checked.stderr
    message = lines[0]
    assert "no {% generation %} markers" in message and FIX.search(message), message

    out = tmp_path / "run"
    with pytest.raises(PreflightError) as info:
        train("sft", str(model), data=data, output=out, config={"max_steps": 1, "max_length": 64})
    assert "\n" not in str(info.value) and FIX.search(str(info.value))
    card = json.loads((out / "run_card.json").read_text())
    assert card["status"] == "failed" and "no {% generation %} markers" in card["error"]
    assert not (out / "model.safetensors").exists()  # stopped before training

    # the fix it names works: loss on every token
    fixed = CliRunner().invoke(app, ["train", "check", "--model", str(model), "--data", str(data),
                                "--no-assistant-only-loss", "--json"])
    assert fixed.exit_code == 0, fixed.output
    numbers = json.loads(fixed.output)
    assert numbers["sources"][0]["trained_share"] == 1.0 and "every token" in numbers["template"]


def test_a_known_family_gets_trls_training_template(tiny_model_dir, tmp_path):
    from trl.chat_template_utils import qwen3_chat_template, qwen3_training_chat_template

    model = with_template(tiny_model_dir, tmp_path / "qwen-like", qwen3_chat_template)
    data = load_training_data("sft", data=write_rows(tmp_path / "a.jsonl", "a", 2))
    report = preflight(str(model), data.dataset, parse_config("sft", {}), sources=data.sources, ids=data.ids)
    assert report.template_source == "trl:qwen3"
    assert "TRL's training template for qwen3" in report.template
    trained = "".join(text for text, state in report.sources[0].example.spans if state == "trained")
    assert "It is 1." in trained and "plus one" not in trained
    # and it is the template TRL's trainer swaps in
    trainer = build_sft_trainer(str(model), data.dataset, parse_config("sft", {"max_length": 256}), tmp_path / "o")
    assert trainer.chat_template == qwen3_training_chat_template


def test_check_cli_renders_examples_and_writes_the_page(tiny_model_dir, mixed_rows, tmp_path):
    page = tmp_path / "check.html"
    ran = CliRunner().invoke(app, ["train", "check", "--model", str(tiny_model_dir), "--data", str(mixed_rows),
                                   "--max-length", "48", "--html", str(page)])
    assert ran.exit_code == 0, ran.output
    assert "chat template:" in ran.output and "short example short-0" in ran.output
    assert "long example long-0" in ran.output and "max_length 48" in ran.output
    html = page.read_text()
    assert html.count("<h3>") == 2 and "<del>" in html and "<mark>It is 1.&lt;|end|&gt;</mark>" in html
