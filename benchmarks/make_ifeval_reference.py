"""Write ``benchmarks/data/ifeval/reference_verdicts.jsonl``: the official IFEval verdicts on the
bundled published responses, produced with Google's own checkers (which postmix does not ship).

    python benchmarks/make_ifeval_reference.py --official DIR [--check]

DIR        a folder with the official ``instructions.py``, ``instructions_registry.py`` and
           ``instructions_util.py`` (google-research ``instruction_following_eval``), or the
           verbatim copy in lm-eval (``lm_eval/tasks/ifeval/``, e.g. from
           ``pip download --no-deps lm_eval==0.4.13``). Its imports are rewritten to a private
           package name; lm-eval's one change to the checkers (a non-letter ``letter`` kwarg such
           as ``#`` replaced by a random letter) is put back as the official file has it.
needs      ``langdetect``, ``absl-py``, ``immutabledict`` and ``nltk`` >= 3.9 in this Python (a
           throwaway venv is fine: nothing of postmix is imported).
sentences  ``nltk.tokenize.PunktTokenizer("english")`` over postmix's bundled ``punkt_tab``
           tables (``postmix/data/punkt/english``) in place of the official
           ``nltk.data.load(".../english.pickle")``, which nltk >= 3.9 no longer unpickles.
scoring    ``evaluation_lib``'s rules, restated here: strict = a non-blank response the checker
           accepts; loose = any of the eight variants (first/last line removed, ``*`` removed).
           langdetect is seeded to 0 (postmix seeds it the same way).
--check    compare with the file already there instead of writing it; exit 1 on a difference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data" / "ifeval"
PROMPTS = ROOT / "postmix" / "data" / "benchmarks" / "ifeval_input_data.jsonl"
PUNKT = ROOT / "postmix" / "data" / "punkt" / "english"
FILES = ("instructions.py", "instructions_registry.py", "instructions_util.py")
PACKAGE = "official_ifeval"
# lm-eval's copy adds these two conditions; the official file tests only `not letter or len > 1`.
LM_EVAL_LETTER = re.compile(
    r"\n(\s*)or ord\(letter\.lower\(\)\) < 97\n\s*or ord\(letter\.lower\(\)\) > 122\n")


def install_official(source: Path, into: Path) -> None:
    """Copy the three official modules into ``into/official_ifeval`` with their imports fixed."""
    package = into / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in FILES:
        text = (source / name).read_text(encoding="utf-8")
        text = re.sub(r"from (instruction_following_eval|lm_eval\.tasks\.ifeval) import",
                      f"from {PACKAGE} import", text)
        text = LM_EVAL_LETTER.sub("\n", text)
        (package / name).write_text(text, encoding="utf-8")


def nltk_data_dir(into: Path) -> Path:
    """A NLTK data folder holding postmix's Punkt tables as ``tokenizers/punkt_tab/english``."""
    target = into / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    target.mkdir(parents=True)
    for table in PUNKT.iterdir():
        if table.suffix in (".txt", ".tab"):
            shutil.copy(table, target / table.name)
    return into / "nltk_data"


def loose_variants(response: str) -> list[str]:
    # Restated from evaluation_lib rather than imported from postmix.verifiers.ifeval_bench on
    # purpose: the reference must not share code with the verifier it judges (and this script
    # runs in a venv without postmix).
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), first, last, both,
            first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]


def verdicts(registry, prompt_row: dict, response: str) -> dict:
    strict, loose = [], []
    for index, instruction_id in enumerate(prompt_row["instruction_id_list"]):
        checker = registry.INSTRUCTION_DICT[instruction_id](instruction_id)
        checker.build_description(**prompt_row["kwargs"][index])
        args = checker.get_instruction_args()
        if args and "prompt" in args:
            checker.build_description(prompt=prompt_row["prompt"])
        strict.append(bool(response.strip() and checker.check_following(response)))
        loose.append(any(r.strip() and checker.check_following(r)
                         for r in loose_variants(response)))
    return {"key": prompt_row["key"], "instruction_id_list": prompt_row["instruction_id_list"],
            "strict": strict, "loose": loose}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True)
    parser.add_argument("--responses", type=Path, default=DATA / "gpt4_responses.jsonl")
    parser.add_argument("--out", type=Path, default=DATA / "reference_verdicts.jsonl")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    missing = [name for name in FILES if not (args.official / name).is_file()]
    if missing:
        sys.exit(f"--official {args.official}: no {', '.join(missing)} there")

    work = Path(tempfile.mkdtemp(prefix="ifeval-official-"))
    try:
        install_official(args.official, work)
        os.environ["NLTK_DATA"] = str(nltk_data_dir(work))
        sys.path.insert(0, str(work))
        import nltk  # noqa: PLC0415  (after NLTK_DATA is set)

        nltk.data.path.insert(0, os.environ["NLTK_DATA"])
        import langdetect  # noqa: PLC0415

        langdetect.DetectorFactory.seed = 0
        util = __import__(f"{PACKAGE}.instructions_util", fromlist=["x"])
        tokenizer = nltk.tokenize.PunktTokenizer("english")
        util._get_sentence_tokenizer = lambda: tokenizer
        registry = __import__(f"{PACKAGE}.instructions_registry", fromlist=["x"])

        by_prompt = {}
        for line in PROMPTS.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                by_prompt[row["prompt"]] = row
        out = []
        for line in args.responses.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append(verdicts(registry, by_prompt[row["prompt"]], row["response"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    text = "".join(json.dumps(v) + "\n" for v in out)
    if args.check:
        old_by_key = {json.loads(line)["key"]: line
                      for line in args.out.read_text(encoding="utf-8").splitlines()}
        differing = [line for v, line in zip(out, text.splitlines(), strict=True)
                     if v["key"] in old_by_key and old_by_key[v["key"]] != line]
        print(f"{len(out)} responses; {len(old_by_key)} in {args.out.name}; "
              f"{len(differing)} of the shared ones differ")
        for line in differing[:10]:
            print("  ", line[:200])
        return 1 if differing else 0
    args.out.write_text(text, encoding="utf-8")
    n = sum(len(v["strict"]) for v in out)
    print(f"wrote {args.out}: {len(out)} responses, {n} instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
