"""Skill templates: how a persona becomes a request for a new prompt.

Each built-in skill is a YAML file shipped in ``postmix/data/skills/<name>.yaml`` (``general``,
``code``, ``gsm``, ``math``, ``precise-if``). A user's YAML overrides any of its fields (nested
mappings merge, so a file holding only ``solve: {template: ...}`` changes just that), or defines a
new skill outright. Templates use named placeholders, replaced literally so that JSON examples
with braces need no escaping: ``{persona}`` (required), ``{constraints}`` (precise-if: the text of
the constraints postmix will append) and ``{prompt}`` (solve templates: the written problem).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from postmix import yamlfile
from postmix.errors import ConfigError
from postmix.schemas import content_hash

BUILTIN_SKILLS: tuple[str, ...] = ("general", "code", "gsm", "math", "precise-if")


def _require(template: str, placeholder: str) -> str:
    if placeholder not in template:
        raise ValueError(f"template must contain the placeholder {placeholder}")
    return template


class SolveTemplate(BaseModel):
    """How a math prompt is put to the model when solutions are sampled for the majority vote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer_format: Literal["gsm8k", "boxed"] = Field(
        description="Where the final answer is: after '####' (gsm8k) or in \\boxed{} (boxed).")
    system: str = ""
    template: str = Field(description="User message; {prompt} is the written problem.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.7},
                                     description="0.7: independent samples that can disagree, "
                                     "so agreement means something.")

    @field_validator("template")
    @classmethod
    def _has_prompt(cls, value: str) -> str:
        return _require(value, "{prompt}")

    def messages(self, prompt: str) -> list[dict[str, str]]:
        user = self.template.replace("{prompt}", prompt)
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return [*system, {"role": "user", "content": user}]


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    verifier: str | None = Field(None, description="RLVR verifier of the rows: ifeval (rows carry "
                                 "sampled constraints), or gsm8k / math (used once a majority "
                                 "vote has found the answer); None: prompt-only rows.")
    system: str = ""
    template: str = Field(description="User message; {persona} is replaced by the persona.")
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 1.0},
                                     description="1.0: synthesis wants varied prompts.")
    solve: SolveTemplate | None = None

    @field_validator("template")
    @classmethod
    def _has_persona(cls, value: str) -> str:
        return _require(value, "{persona}")

    def messages(self, persona: str, constraints: str = "") -> list[dict[str, str]]:
        user = self.template.replace("{persona}", persona).replace("{constraints}", constraints)
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return [*system, {"role": "user", "content": user}]

    @property
    def fingerprint(self) -> str:
        """Identifies the exact template text used, recorded in every row's meta."""
        return content_hash(self.model_dump(mode="json"), length=12)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yamlfile.read_yaml(path, "skill template file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of skill fields (template, system, ...)")
    return data


def builtin_skill_data(name: str) -> dict[str, Any]:
    resource = files("postmix").joinpath("data", "skills", f"{name}.yaml")
    return _read_yaml(Path(str(resource)))


def load_skill(name: str, override: str | Path | None = None) -> Skill:
    """The built-in skill ``name``, with the fields of the YAML file ``override`` merged over it."""
    data: dict[str, Any] = {}
    if name in BUILTIN_SKILLS:
        data = builtin_skill_data(name)
    elif override is None:
        raise ConfigError(f"unknown skill {name!r}: use one of {', '.join(BUILTIN_SKILLS)}, or "
                          "define it in a YAML file passed with --template")
    where = f"skill {name!r}"
    if override is not None:
        path = Path(override)
        if not path.exists():
            raise ConfigError(f"no such template file: {path}")
        data = _merge(data, _read_yaml(path))
        where = str(path)
    data["name"] = name
    try:
        return Skill.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConfigError(f"{where}: {loc}: {first['msg']}") from None
