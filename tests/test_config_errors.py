"""Issue 14: a spec or recipe with several mistakes reports all of them at once, each with its
YAML line and, for a misspelt key, the key it was probably meant to be."""

from __future__ import annotations

import pytest

from postmix.errors import ConfigError
from postmix.io.errors_text import yaml_key_lines
from postmix.mix.spec import load_spec
from postmix.pipeline import load_recipe, plan

SPEC = """\
name: m
kind: sft
sources:
  - path: a.jsonl
    fracton: 0.5
  - path: b.jsonl
    steps:
      - dedup: {threshhold: 0.7}
      - dedupe: {}
global_steps:
  - decontam: {benchmarks: [gsm8k], ngrams: 8}
"""

RECIPE = """\
name: r
stages:
  - name: raw
    run: ingest
    input: missing.jsonl
  - name: clean
    run: filter
    input: raw
    config:
      rulez: [refusal]
  - name: near
    run: dedup
    input: clean
    config:
      on: user
      treshold: 0.9
"""


def test_every_spec_problem_is_reported_with_its_line_and_a_hint(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "4 problems" in message and "\n" not in message
    assert "line 5: sources.0.fracton: unknown key (did you mean fraction?)" in message
    assert "line 8: sources.1.steps.0.dedup.threshhold: unknown key (did you mean threshold?)" in message
    assert "line 9: sources.1.steps.1: unknown step 'dedupe'" in message
    assert "line 11: global_steps.0.decontam.ngrams: unknown key (did you mean ngram?)" in message


def test_every_recipe_problem_is_reported_at_plan_time(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    with pytest.raises(ConfigError) as caught:
        plan(load_recipe(path), tmp_path / "w", tmp_path)
    message = str(caught.value)
    assert message.startswith("3 problems: ")
    assert "stage 'raw': input 'missing.jsonl' is neither an earlier stage nor an existing path" in message
    assert "stage 'clean' (filter): line 10: stages.1.config.rulez: unknown key (did you mean rules?)" in message
    assert "stage 'near' (dedup): line 16: stages.2.config.treshold: unknown key (did you mean threshold?)" \
        in message


def test_a_recipe_key_typo_gets_a_hint_and_a_line(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("name: r\nstages:\n  - name: a\n    run: ingest\n    inputs: x.jsonl\n")
    with pytest.raises(ConfigError, match=r"line 5: stages\.0\.inputs: unknown key \(did you mean input\?\)"):
        load_recipe(path)


def test_key_lines_follow_mappings_and_lists():
    lines = yaml_key_lines("a:\n  - b: 1\n    c: [x, y]\nd: 2\n")
    assert lines[("a",)] == 1 and lines[("a", 0, "b")] == 2 and lines[("a", 0, "c")] == 3
    assert lines[("d",)] == 4
    assert yaml_key_lines("a: [unclosed") == {}
