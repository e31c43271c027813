"""Rating rubrics: named aspects, each scored 1-5 with a short rationale.

The built-in ``ultrafeedback`` rubric follows the four aspects UltraFeedback rates (helpfulness,
instruction following, honesty, truthfulness); the wording here is postmix's own. A custom rubric
is a YAML file with the same shape as ``Rubric``::

    name: concise
    aspects:
      - name: brevity
        question: Does the response say what is needed and no more?
        scale: {1: rambling or padded, 3: some filler, 5: nothing to cut}
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from postmix import yamlfile
from postmix.errors import ConfigError

Score = Literal[1, 2, 3, 4, 5]


class Aspect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="JSON key in the judge's answer.")
    question: str = Field(min_length=1)
    scale: dict[int, str] = Field(default_factory=dict, description="Anchors for some of 1..5.")

    @field_validator("scale")
    @classmethod
    def _scale_in_range(cls, value: dict[int, str]) -> dict[int, str]:
        bad = [k for k in value if not 1 <= k <= 5]
        if bad:
            raise ValueError(f"scale keys must be 1..5, got {bad}")
        return dict(sorted(value.items()))


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    system: str = ("You are a careful, impartial evaluator of AI assistant responses. Judge only "
                   "what is on the page, do not reward length for its own sake, and keep each "
                   "rationale to one or two sentences.")
    aspects: tuple[Aspect, ...] = Field(min_length=1)

    @field_validator("aspects")
    @classmethod
    def _unique(cls, value: tuple[Aspect, ...]) -> tuple[Aspect, ...]:
        names = [a.name for a in value]
        if len(set(names)) != len(names):
            raise ValueError(f"aspect names must be unique: {names}")
        return value

    @property
    def aspect_names(self) -> list[str]:
        return [a.name for a in self.aspects]

    def describe(self) -> str:
        """The aspects and their anchors, as the judge reads them."""
        blocks = []
        for aspect in self.aspects:
            lines = [f"### {aspect.name}", aspect.question]
            lines += [f"- {score}: {text}" for score, text in aspect.scale.items()]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)


ULTRAFEEDBACK = Rubric(
    name="ultrafeedback",
    aspects=(
        Aspect(name="helpfulness",
               question="How useful is the response for what the user actually needs: correct, "
                        "relevant, informative and clear, without padding or repetition?",
               scale={1: "wrong or useless; fabricated content or nothing of value",
                      2: "partly relevant but with errors that could mislead",
                      3: "correct and relevant but thin or missing useful detail",
                      4: "correct, relevant and informative",
                      5: "correct, thorough where it matters, and exceptionally clear"}),
        Aspect(name="instruction_following",
               question="Does the response do what the instruction asks, respecting every stated "
                        "constraint (task, format, length, style, language)?",
               scale={1: "ignores the instruction",
                      2: "addresses one part of the task and misses the rest",
                      3: "does the task but bends or drops some constraints",
                      4: "follows the instruction with minor deviations",
                      5: "follows every part of the instruction"}),
        Aspect(name="honesty",
               question="Does the response convey appropriate confidence: sure where it is "
                        "right, open about uncertainty or limits, never confidently wrong?",
               scale={1: "confidently wrong",
                      2: "confident with significant mistakes, or hedges on what it gets right "
                         "while asserting what it gets wrong",
                      3: "uncertain or refuses without need, or minor unflagged errors",
                      4: "correct but does not signal where it is unsure",
                      5: "correct and expresses uncertainty exactly where warranted"}),
        Aspect(name="truthfulness",
               question="Is the response free of hallucination: no invented facts, no "
                        "contradictions of the instruction or of itself, no false premises "
                        "accepted?",
               scale={1: "mostly fabricated or self-contradictory",
                      2: "severe hallucination in key points",
                      3: "some invented or misleading details, main point intact",
                      4: "minor slips that do not affect the main points",
                      5: "no hallucination"}),
    ),
)

BUILTIN_RUBRICS: dict[str, Rubric] = {ULTRAFEEDBACK.name: ULTRAFEEDBACK}


def load_rubric(name_or_path: str | Path) -> Rubric:
    """A built-in rubric by name, or a YAML rubric file."""
    text = str(name_or_path)
    if text in BUILTIN_RUBRICS:
        return BUILTIN_RUBRICS[text]
    path = Path(text)
    if not path.exists():
        raise ConfigError(f"unknown rubric {text!r}: use one of {', '.join(BUILTIN_RUBRICS)} or "
                          "the path of a rubric YAML file")
    data = yamlfile.read_yaml(path, "rubric file")
    try:
        return Rubric.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


class AspectAnswer(BaseModel):
    """One aspect as the judge answers it: rationale first, so the score follows from it."""

    model_config = ConfigDict(extra="forbid")

    rationale: str
    score: Score


def rating_schema(rubric: Rubric) -> type[BaseModel]:
    """``{aspect: {rationale, score}}`` for every aspect: strict-mode-compatible JSON schema."""
    return _rating_schema(tuple(rubric.aspect_names))


def batch_rating_schema(rubric: Rubric, n: int) -> type[BaseModel]:
    """``{ratings: [rating x n]}``: all completions of one prompt in one answer."""
    return _batch_rating_schema(tuple(rubric.aspect_names), n)


@lru_cache(maxsize=64)
def _rating_schema(aspects: tuple[str, ...]) -> type[BaseModel]:
    fields = {name: (AspectAnswer, ...) for name in aspects}
    return create_model("Rating", __config__=ConfigDict(extra="forbid"), **fields)


@lru_cache(maxsize=256)
def _batch_rating_schema(aspects: tuple[str, ...], n: int) -> type[BaseModel]:
    item = _rating_schema(aspects)
    ratings = Annotated[list[item], Field(min_length=n, max_length=n)]
    return create_model(
        f"Ratings{n}", __config__=ConfigDict(extra="forbid"), ratings=(ratings, ...)
    )
