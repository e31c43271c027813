"""Prompt formats as data: how a benchmark item becomes the messages a model is asked.

A format names its template (``{question}`` is the item's text), an optional system turn,
worked examples (few-shot: each a user turn and the assistant's answer), whether the model's
chat template is used or the turns are joined as plain text, the stop sequences and the answer
budget. The whole format is recorded in ``BenchmarkScore.prompt_format``, so a score can be
reproduced from its results file alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str
    answer: str


class PromptFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field("{question}", description="The user turn; {question} is the item.")
    system: str | None = Field(None, description="A system turn before everything else.")
    examples: list[Example] = Field(default_factory=list, description="Few-shot examples, "
                                    "rendered with the same template before the item.")
    chat_template: bool = Field(True, description="Use the model's chat template; False joins "
                                "the turns as plain text (local transformers backend only).")
    stop: list[str] = Field(default_factory=list, description="Stop sequences.")
    max_tokens: int = Field(512, ge=1, description="Most tokens per answer.")

    def messages(self, question: str) -> list[dict[str, str]]:
        """The conversation for one item: system, the examples' turns, then the item."""
        turns: list[dict[str, str]] = []
        if self.system:
            turns.append({"role": "system", "content": self.system})
        for example in self.examples:
            turns.append({"role": "user", "content": self.render(example.question)})
            turns.append({"role": "assistant", "content": example.answer})
        turns.append({"role": "user", "content": self.render(question)})
        if self.chat_template:
            return turns
        # plain text: one user turn the local backend continues as is (``raw_prompt``)
        return [{"role": "user", "content": "\n\n".join(t["content"] for t in turns)}]

    def render(self, question: str) -> str:
        return self.template.replace("{question}", question)

    def sampling(self, base: dict[str, Any]) -> dict[str, Any]:
        """The request's sampling: the eval's over the format's budget and stops."""
        sampling: dict[str, Any] = {"max_tokens": self.max_tokens, **base}
        if self.stop:
            sampling["stop"] = list(self.stop)
        if not self.chat_template:
            sampling["raw_prompt"] = True
        return sampling

    def record(self) -> dict[str, Any]:
        """What ``BenchmarkScore.prompt_format`` holds: the format plus its shot count."""
        return {"shots": len(self.examples), **self.model_dump(mode="json")}
