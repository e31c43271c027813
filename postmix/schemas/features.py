"""Arrow column types of each record kind, so an empty output still has the right schema and
every writer produces the same column order."""

from __future__ import annotations

import datasets

_MESSAGES = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
_STR = datasets.Value("string")
_FLOAT = datasets.Value("float64")

FEATURES: dict[str, datasets.Features] = {
    "sft": datasets.Features({"id": _STR, "messages": _MESSAGES, "source": _STR, "meta": _STR}),
    "preference": datasets.Features(
        {
            "id": _STR,
            "prompt": _MESSAGES,
            "chosen": _MESSAGES,
            "rejected": _MESSAGES,
            "chosen_score": _FLOAT,
            "rejected_score": _FLOAT,
            "chosen_model": _STR,
            "rejected_model": _STR,
            "judge": _STR,
            "source": _STR,
            "meta": _STR,
        }
    ),
    "rlvr": datasets.Features(
        {
            "id": _STR,
            "prompt": _MESSAGES,
            "ground_truth": _STR,
            "verifier": _STR,
            "constraints": datasets.List(_STR),
            "source": _STR,
            "meta": _STR,
        }
    ),
    "completion": datasets.Features(
        {
            "id": _STR,
            "prompt_id": _STR,
            "prompt": _MESSAGES,
            "response": _STR,
            "model": _STR,
            "sampling": _STR,
            "source": _STR,
            "meta": _STR,
        }
    ),
    # prompt-only rows (synthesised prompts, judge inputs): listed last so that the richer kinds
    # above, which also have a prompt column, are recognised first
    "prompt": datasets.Features({"id": _STR, "prompt": _MESSAGES, "source": _STR, "meta": _STR}),
}


def kind_of_columns(columns: list[str] | set[str]) -> str | None:
    """Which record kind a postmix table with these columns holds (None if not a postmix table)."""
    cols = set(columns)
    for kind, features in FEATURES.items():
        if set(features) <= cols:
            return kind
    return None
