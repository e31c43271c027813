"""Training on a mix version (``--mix name@N``): the run card names the mix and its content hash,
carries the mix's token counts and the pre-flight's numbers, and the run appears in the
registry's lineage for that version."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from postmix import mix
from postmix.cli import app
from postmix.mix.registry import Registry


def write_source(path, n: int) -> None:
    rows = [{"id": f"a-{i}", "source": "a", "meta": "{}", "messages": [
        {"role": "user", "content": f"What is {i} plus one?"},
        {"role": "assistant", "content": f"It is {i + 1}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_sft_on_a_mix_records_lineage(tiny_model_dir, tmp_path):
    write_source(tmp_path / "a.jsonl", 12)
    home = tmp_path / "registry"
    write_source(tmp_path / "b.jsonl", 5)
    built = mix.build({"name": "tiny-sft", "kind": "sft", "sources": [{"path": "a.jsonl", "count": 8},
                                                                      {"name": "b", "path": "b.jsonl"}]},
                      home=home, base=tmp_path, progress=False, tokenizer=str(tiny_model_dir))
    ref = built.mix.ref
    config = tmp_path / "sft.yaml"
    config.write_text("max_length: 64\nper_device_train_batch_size: 2\ngradient_accumulation_steps: 1\n"
                      "gradient_checkpointing: false\nlogging_steps: 1\nlearning_rate: 1.0e-3\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "sft", "--mix", ref, "--home", str(home), "--model",
                                      str(tiny_model_dir), "--config", str(config), "--output", str(out),
                                      "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "run_card.json").read_text())
    assert card["mix"] == ref == "tiny-sft@1"
    assert card["content_hash"] == built.mix.content_hash
    assert card["data"]["rows"] == 13 and card["config"]["max_steps"] == 2
    manifest = built.manifest
    assert card["data"]["tokens"] == {"tokenizer": str(tiny_model_dir), "total": manifest["tokens"],
                                      "per_source": {"a": manifest["sources"][0]["tokens"],
                                                     "b": manifest["sources"][1]["tokens"]}}
    preflight = card["preflight"]
    assert preflight["template_source"] == "model" and preflight["max_length"] == 64
    assert {s["source"]: s["rows"] for s in preflight["sources"]} == {"a": 8, "b": 5}
    assert preflight["totals"]["rows_checked"] == 13 and 0 < preflight["totals"]["trained_share"] < 1
    assert "<mark>" in (out / "preflight.html").read_text() and preflight["html"] == str(out / "preflight.html")
    assert "pre-flight" in result.output
    assert card["trl_config"]["max_steps"] == 2 and card["status"] == "completed"

    runs = Registry(home).runs("tiny-sft", 1)
    assert [r["run_id"] for r in runs] == [card["run_id"]]
    assert runs[0]["output_dir"] == str(out.resolve()) and runs[0]["method"] == "sft"
    assert runs[0]["metrics"] == card["metrics"]
