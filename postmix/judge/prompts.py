"""The judge's messages: how a conversation, a response and a rubric are put in front of it."""

from __future__ import annotations

from postmix.judge.rubrics import Rubric

_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def render_conversation(prompt: list[dict[str, str]]) -> str:
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"[{_ROLE_NAMES.get(m['role'], m['role'])}]\n{m['content']}" for m in prompt)


def rating_messages(
    rubric: Rubric, prompt: list[dict[str, str]], response: str
) -> list[dict[str, str]]:
    user = (
        "Rate the assistant's response to the instruction below on each aspect of the rubric, "
        "from 1 (worst) to 5 (best). Give a short rationale before each score.\n\n"
        f"## Rubric\n\n{rubric.describe()}\n\n"
        f"## Instruction\n\n{render_conversation(prompt)}\n\n"
        f"## Response\n\n{response}\n\n"
        "Answer with only a JSON object with one key per aspect ("
        + ", ".join(rubric.aspect_names) + "), each holding {\"rationale\": ..., \"score\": 1-5}."
    )
    return [{"role": "system", "content": rubric.system}, {"role": "user", "content": user}]


def batch_rating_messages(rubric: Rubric, prompt: list[dict[str, str]],
                          responses: list[str]) -> list[dict[str, str]]:
    listed = "\n\n".join(f"### Response {i}\n\n{text}" for i, text in enumerate(responses, 1))
    user = (
        f"Rate each of the {len(responses)} responses below to the same instruction on each "
        "aspect of the rubric, from 1 (worst) to 5 (best), judging each on its own merits. Give "
        "a short rationale before each score.\n\n"
        f"## Rubric\n\n{rubric.describe()}\n\n"
        f"## Instruction\n\n{render_conversation(prompt)}\n\n"
        f"## Responses\n\n{listed}\n\n"
        "Answer with only a JSON object {\"ratings\": [...]} holding one entry per response, in "
        "order, each with one key per aspect (" + ", ".join(rubric.aspect_names)
        + ") holding {\"rationale\": ..., \"score\": 1-5}."
    )
    return [{"role": "system", "content": rubric.system}, {"role": "user", "content": user}]


COMPARE_SYSTEM = ("You are an impartial judge comparing two AI assistant responses. Decide which "
                  "response better serves the user: correct, helpful, honest, and faithful to the "
                  "instruction. Ignore the order they are shown in and do not prefer a response "
                  "for being longer.")
# with a rubric its aspects are the criteria, so the system prompt names none of its own
RUBRIC_COMPARE_SYSTEM = ("You are an impartial judge comparing two AI assistant responses. "
                         "Decide which response is better on the aspects of the rubric given. "
                         "Ignore the order they are shown in and do not prefer a response for "
                         "being longer.")


def compare_messages(prompt: list[dict[str, str]], first: str, second: str,
                     rubric: Rubric | None = None) -> list[dict[str, str]]:
    """Without a rubric the judge weighs overall quality (``COMPARE_SYSTEM``); with one, the
    rubric's aspects, shown as ``rating_messages`` shows them, are the criteria."""
    criteria = (f"## Rubric\n\nWeigh the responses on these aspects:\n\n{rubric.describe()}\n\n"
                if rubric is not None else "")
    user = (
        f"{criteria}## Instruction\n\n{render_conversation(prompt)}\n\n"
        f"## Response 1\n\n{first}\n\n## Response 2\n\n{second}\n\n"
        "Which response is better? Answer with only a JSON object "
        "{\"rationale\": <one or two sentences>, \"winner\": \"1\" | \"2\" | \"tie\"}."
    )
    system = COMPARE_SYSTEM if rubric is None else RUBRIC_COMPARE_SYSTEM
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
