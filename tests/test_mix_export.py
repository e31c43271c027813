"""``mix export``: the folder (or Hub repo) is what ``datasets.load_dataset`` reads as it is, with
a dataset card whose YAML the Hub reads and whose body tells the mix's story."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from postmix import mix
from postmix.cli import app
from postmix.errors import PostmixError
from postmix.mix import exporter
from postmix.mix.card import spec_fingerprint
from postmix.mix.registry import MANIFEST


def write_source(path: Path, prefix: str, n: int, duplicates: int = 0) -> None:
    rows = [{"id": f"{prefix}-{i:03d}", "source": prefix, "meta": "{}", "messages": [
        {"role": "user", "content": f"{prefix} question {i % (n - duplicates)} | ünïcode"},
        {"role": "assistant", "content": f"answer {i % (n - duplicates)}"}]} for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@pytest.fixture
def built(tmp_path):
    write_source(tmp_path / "chat.jsonl", "chat", 40, duplicates=6)
    write_source(tmp_path / "math.jsonl", "math", 20)
    spec = {"name": "card-mix", "kind": "sft", "seed": 3, "description": "A mix for the card test.",
            "sources": [{"path": "chat.jsonl", "steps": [{"dedup": {"mode": "exact"}}]},
                        {"path": "math.jsonl", "count": 12}]}
    return mix.build(spec, home=tmp_path / "reg", base=tmp_path, progress=False), tmp_path / "reg"


def load_folder(folder: Path, cache: Path):
    import datasets

    return datasets.load_dataset(str(folder), cache_dir=str(cache))


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


@pytest.mark.parametrize("format", ["parquet", "jsonl"])
def test_exported_folder_loads_with_load_dataset(built, tmp_path, format):
    result, home = built
    out = tmp_path / f"export-{format}"
    mix.export("card-mix@1", out, home=home, format=format)
    loaded = load_folder(out, tmp_path / "cache")
    expected = mix.load("card-mix@1", home=home)
    assert list(loaded) == ["train"]
    assert loaded["train"].features == expected.features
    assert loaded["train"].to_list() == expected.to_list()
    meta = front_matter((out / "README.md").read_text())
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": f"data/train-*.{format}"}]}]
    assert meta["dataset_info"]["splits"] == [
        {"name": "train", "num_bytes": meta["dataset_info"]["dataset_size"],
         "num_examples": result.mix.rows}]
    data_bytes = sum(p.stat().st_size for p in (out / "data").iterdir())
    assert meta["dataset_info"]["download_size"] == data_bytes
    assert [f["name"] for f in meta["dataset_info"]["features"]] == list(expected.features)
    assert meta["license"] == "other" and meta["task_categories"] == ["text-generation"]
    assert "postmix" in meta["tags"] and "sft" in meta["tags"]
    assert json.loads((out / MANIFEST).read_text())["content_hash"] == result.mix.content_hash


def test_parquet_shards_are_copied_byte_for_byte_under_hub_names(built, tmp_path):
    result, home = built
    out = tmp_path / "out"
    mix.export("card-mix@1", out, home=home)
    names = sorted(p.name for p in (out / "data").iterdir())
    shards = result.mix.shard_paths()
    assert names == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    assert [(out / "data" / n).read_bytes() for n in names] == [p.read_bytes() for p in shards]
    assert {p.name for p in out.iterdir()} == {"README.md", "data", MANIFEST, "spec.yaml",
                                               "rejects.parquet", "provenance.parquet"}


def test_card_body_tells_composition_curation_lineage_and_spec(built, tmp_path):
    result, home = built
    out = tmp_path / "out"
    mix.export("card-mix@1", out, home=home)
    card = (out / "README.md").read_text()
    body = card.split("---\n", 2)[2]
    manifest = result.manifest
    chat, math = manifest["sources"]
    assert chat["rows"] == 34 and math["rows"] == 12  # 6 exact duplicates removed, 12 taken
    assert "A mix for the card test." in body
    assert f"| chat | `{chat['location']}` | 34 | {34 / 46:.1%} | 34 | fraction=1.0 |" in body
    assert f"| math | `{math['location']}` | 12 | {12 / 46:.1%} | 12 | count=12 |" in body
    dedup = next(s for s in chat["steps"] if s["step"] == "dedup")
    (reason, removed), = dedup["rejected"].items()
    assert removed == 6
    assert f"| chat | dedup | 40 | 34 | {reason}: 6 |" in body
    assert "| math | take | 20 | 12 | not_sampled: 8 |" in body
    assert "6 rows in `rejects.parquet`" in body
    assert "No decontamination step" in body
    assert "none (first version)" in body
    assert f"`{result.mix.content_hash}`" in body
    assert f"spec fingerprint: `{spec_fingerprint(manifest['spec'])}`" in body
    assert f"fingerprint `{chat['fingerprint']}`" in body and f"fingerprint `{math['fingerprint']}`" in body
    spec_block = body.split("## Spec\n", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(spec_block) == manifest["spec"]


def test_second_version_names_its_parent(built, tmp_path):
    _, home = built
    spec = {"name": "card-mix", "kind": "sft", "sources": [{"path": "math.jsonl", "count": 5}]}
    mix.build(spec, home=home, base=tmp_path, progress=False)
    mix.export("card-mix@2", tmp_path / "v2", home=home)
    assert "parent: `card-mix@1`" in (tmp_path / "v2" / "README.md").read_text()


def test_card_shows_the_contamination_matrix_and_exports_its_files(built, tmp_path):
    result, home = built
    folder = result.mix.path
    matrix = {"benchmarks": [{"name": "gsm8k", "instances": 1319}],
              "cells": [{"source": "chat", "benchmark": "gsm8k", "side": "prompt", "rows_flagged": 3,
                         "instances_hit": 2, "benchmark_instances": 1319, "share": 2 / 1319},
                        {"source": "math", "benchmark": "gsm8k", "side": "prompt", "rows_flagged": 0,
                         "instances_hit": 0, "benchmark_instances": 1319, "share": 0.0}]}
    (folder / "contamination.json").write_text(json.dumps(matrix))
    (folder / "contamination.tsv").write_text("source\tbenchmark\n")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["contamination"] = {"json": "contamination.json", "tsv": "contamination.tsv"}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "out"
    mix.export("card-mix@1", out, home=home)
    body = (out / "README.md").read_text()
    assert "No decontamination step" not in body
    assert "gsm8k (1,319 instances)" in body
    assert f"| chat | gsm8k | prompt | 3 | 2 / 1,319 | {2 / 1319:.2%} |" in body
    assert "| math | gsm8k | prompt | 0 | 0 / 1,319 | 0.00% |" in body
    assert (out / "contamination.json").read_bytes() == (folder / "contamination.json").read_bytes()
    assert (out / "contamination.tsv").exists()


def test_license_from_the_command_line(built, tmp_path):
    _, home = built
    out = tmp_path / "out"
    ran = CliRunner().invoke(app, ["mix", "export", "card-mix@1", "-o", str(out), "--home", str(home),
                                   "--license", "odc-by"])
    assert ran.exit_code == 0, ran.output
    card = (out / "README.md").read_text()
    assert front_matter(card)["license"] == "odc-by" and "`odc-by`" in card


def test_a_failed_export_leaves_no_folder(built, tmp_path, monkeypatch):
    _, home = built

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(exporter, "write_card", broken)
    with pytest.raises(OSError, match="disk full"):
        mix.export("card-mix@1", tmp_path / "out", home=home)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


class FakeHfApi:
    """Records what a push would send; keeps a copy of the uploaded folder (it is temporary)."""

    calls: list = []
    uploaded: Path | None = None
    fail: str | None = None

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        if FakeHfApi.fail:
            raise RuntimeError(FakeHfApi.fail)
        FakeHfApi.calls.append(("upload_folder", repo_id, kwargs))
        shutil.copytree(folder_path, FakeHfApi.uploaded)


def test_hub_push_sends_the_same_layout_in_one_commit(built, tmp_path, monkeypatch):
    import huggingface_hub

    result, home = built
    FakeHfApi.calls, FakeHfApi.uploaded, FakeHfApi.fail = [], tmp_path / "repo", None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    where = mix.export("card-mix@1", home=home, hub="me/card-mix", private=True)
    assert where == "hf:me/card-mix"
    (create, repo, create_kwargs), (upload, repo2, upload_kwargs) = FakeHfApi.calls
    assert (create, upload, repo, repo2) == ("create_repo", "upload_folder", "me/card-mix", "me/card-mix")
    assert create_kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload_kwargs["repo_type"] == "dataset" and upload_kwargs["delete_patterns"] == ["data/*"]
    assert result.mix.content_hash in upload_kwargs["commit_message"]
    loaded = load_folder(tmp_path / "repo", tmp_path / "cache")
    assert loaded["train"].to_list() == mix.load("card-mix@1", home=home).to_list()
    assert 'load_dataset("me/card-mix", split="train")' in (tmp_path / "repo" / "README.md").read_text()


def test_hub_push_failure_is_one_line(built, tmp_path, monkeypatch):
    import huggingface_hub

    _, home = built
    FakeHfApi.calls, FakeHfApi.uploaded, FakeHfApi.fail = [], tmp_path / "repo", "401 Unauthorized\nmore"
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    with pytest.raises(PostmixError) as info:
        mix.export("card-mix@1", home=home, hub="me/card-mix")
    assert str(info.value) == ("could not push card-mix@1 to me/card-mix: 401 Unauthorized "
                               "(check HF_TOKEN and the repo name)")
