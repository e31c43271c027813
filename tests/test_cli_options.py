"""CLI options derived from the config models: names, kinds, defaults and one-line errors; a
step added to the registry gets its verb; help reads cleanly; ``postmix --help`` imports nothing
heavy."""

import json
import subprocess
import sys
from typing import Literal

import datasets
import pytest
import typer.main
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from postmix.cli import app
from postmix.cli import options as opts
from postmix.cli.command import PostmixCommand, PostmixGroup
from postmix.curate.normalise import NormaliseOptions
from postmix.curate.runner import Verdicts
from postmix.curate.steps import STEPS, Step
from postmix.errors import ConfigError
from postmix.io import load_records, save_records

runner = CliRunner()


class Inner(BaseModel):
    depth: int = Field(2, description="How deep.")


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["round_robin", "random"] = Field("random", description="Mode.")
    verify: bool = Field(False, description="Check.")
    use_cache: bool = True
    cache_path: str | None = None
    aspects: list[str] | None = Field(None, description="Aspects.")
    sampling: dict = Field(default_factory=lambda: {"temperature": 0.7}, description="Sampling.")
    normalise: NormaliseOptions = Field(default_factory=NormaliseOptions)
    lora: Inner | None = None
    ratio: float = Field(0.5, gt=0, description="A share.")


def _options():
    return {o.flag: o for o in opts.field_options(Sample)}


def test_field_options_follow_the_naming_rules():
    flags = _options()
    assert set(flags) == {
        "--mode",
        "--verify",
        "--use-cache",
        "--cache",
        "--aspect",
        "--sampling",
        "--temperature",
        "--max-tokens",
        "--nfkc",
        "--lowercase",
        "--strip-punctuation",
        "--markup",
        "--lora-depth",
        "--ratio",
    }
    assert flags["--mode"].choices == ("round_robin", "random")
    assert flags["--aspect"].alias == "--aspects" and flags["--aspect"].kind == "list"
    assert "[default: 0.5]" in flags["--ratio"].help and "A share." in flags["--ratio"].help
    assert flags["--nfkc"].path == ("normalise", "nfkc")


def test_values_become_the_config_and_unset_options_keep_defaults():
    options = opts.field_options(Sample)
    given = {o.param: None for o in options}
    given.update(
        {
            opts.PREFIX + "mode": "round-robin",
            opts.PREFIX + "verify": True,
            opts.PREFIX + "aspects": ["a,b", "c"],
            opts.PREFIX + "sampling__max_tokens": 9,
            opts.PREFIX + "normalise__lowercase": False,
            opts.PREFIX + "lora__depth": 3,
            opts.PREFIX + "use_cache": False,
        }
    )
    config = opts.build(Sample, (options, given), {"ratio": 0.25})
    assert config.mode == "round_robin" and config.verify and config.aspects == ["a", "b", "c"]
    assert config.sampling == {"temperature": 0.7, "max_tokens": 9}
    assert config.normalise == NormaliseOptions(lowercase=False) and config.lora.depth == 3
    assert config.ratio == 0.25 and config.use_cache is False
    assert opts.build(Sample, (options, {})) == Sample()


def test_a_bad_value_is_a_one_line_error_naming_the_option():
    options = opts.field_options(Sample)
    with pytest.raises(ConfigError, match=r"^--ratio: Input should be greater than 0$"):
        opts.build(Sample, (options, {opts.PREFIX + "ratio": -1.0}))
    with pytest.raises(ConfigError, match="^--sampling must be JSON"):
        opts.build(Sample, (options, {opts.PREFIX + "sampling": "{nope"}))


class FakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker: str = Field("drop", description="Text that rejects a row.")
    keep_short: bool = Field(False, description="Keep rows under ten characters.")


def fake_decider(ds, config, *, kind):
    texts = [" ".join(t["content"] for t in row) for row in ds["messages"]]
    return Verdicts(
        [
            ("marked" if config.marker in t and not (config.keep_short and len(t) < 10) else None)
            for t in texts
        ],
        [""] * len(texts),
    )


def test_a_step_added_to_the_registry_is_a_curate_verb(tmp_path, monkeypatch):
    here = __name__
    monkeypatch.setitem(
        STEPS,
        "fake",
        Step(
            "fake",
            "drop rows holding a marker",
            config=f"{here}:FakeConfig",
            local=f"{here}:fake_decider",
            ray=f"{here}:fake_decider",
        ),
    )
    listing = runner.invoke(app, ["curate", "--help"])
    assert "fake" in listing.output and "Drop rows holding a marker." in listing.output
    help_text = runner.invoke(app, ["curate", "fake", "--help"]).output
    assert "--marker TEXT" in help_text and "--keep-short / --no-keep-short" in help_text
    rows = [
        {
            "id": f"r{i}",
            "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}],
        }
        for i, text in enumerate(["a plain row here", "xx here", "a long row with xx in it"])
    ]
    source = save_records(datasets.Dataset.from_list(rows), tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["curate", "fake", str(source), "-o", str(out), "--marker", "xx", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rejected"] == {"marked": 2}
    assert load_records(out)[0]["id"] == ["r0"]


def test_help_is_plain_and_complete():
    for args in (
        ["--help"],
        ["curate", "--help"],
        ["curate", "dedup", "--help"],
        ["judge", "rate", "--help"],
        ["curate", "synth", "--help"],
        ["train", "sft", "--help"],
        ["mix", "export", "--help"],
    ):
        text = runner.invoke(app, args).output
        assert "{" not in text.split("\n\n")[0] and "<bool>" not in text and "<str>" not in text, (
            args
        )
    listing = runner.invoke(app, ["curate", "--help"]).output
    assert all(verb in listing for verb in ("filter", "dedup", "decontam", "synth", "respond"))
    dedup = runner.invoke(app, ["curate", "dedup", "--help"]).output
    assert "curate dedup [OPTIONS] SOURCE\n" in dedup
    assert "--verify / --no-verify" in dedup and "--mode [exact|near|both]" in dedup
    assert "--no-cache" not in dedup  # dedup's --cache is a folder, there is no request cache


def _verbs(command, path="postmix"):
    if isinstance(command, PostmixGroup):
        for name in command.list_commands(None):
            yield from _verbs(command.get_command(None, name), f"{path} {name}")
    else:
        yield path, command


def test_every_verb_is_a_postmix_command_and_every_option_has_help():

    for name, command in _verbs(typer.main.get_command(app)):
        assert isinstance(command, PostmixCommand), name
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert param.help, f"{name} {param.opts} has no help"


def test_postmix_help_imports_no_heavy_library():
    code = (
        "import sys; from typer.testing import CliRunner; from postmix.cli import app; "
        "CliRunner().invoke(app, ['--help']); CliRunner().invoke(app, ['--version']); "
        "print(sorted(m for m in ('datasets', 'pyarrow', 'numba', 'torch', 'postmix.curate', "
        "'postmix.llm', 'postmix.train') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_no_library_package_imports_the_cli():
    from pathlib import Path

    import postmix

    root = Path(postmix.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "cli" not in p.relative_to(root).parts[:1]
        and ("from postmix.cli" in p.read_text() or "import postmix.cli" in p.read_text())
    ]
    assert offenders == []


def test_train_options_override_the_config_file_and_reach_launched_processes(tmp_path):
    import yaml

    config = tmp_path / "sft.yaml"
    config.write_text("max_length: 64\n")
    out = tmp_path / "run"
    base = ["train", "sft", "--model", "m", "--data", "d.jsonl", "-o", str(out)]
    launch = ["--launch", "accelerate", "--num-processes", "2", "--dry-run"]
    overrides = ["-c", str(config), "--learning-rate", "1e-4", "--lora-r", "8"]
    result = runner.invoke(app, [*base, *overrides, *launch])
    assert result.exit_code == 0, result.output
    merged = out / "postmix-sft.yaml"
    assert f"--config {merged}" in result.output.replace("\n", " ")
    written = yaml.safe_load(merged.read_text())
    assert written == {"max_length": 64, "learning_rate": 1e-4, "lora": {"r": 8}}
    bad = runner.invoke(app, [*base, "--learning-rate", "-1"])
    assert isinstance(bad.exception, ConfigError)
    assert str(bad.exception) == "--learning-rate: Input should be greater than 0"
