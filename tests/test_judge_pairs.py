"""``judge pairs``: strategies, ties and margins with exact outcomes, stats, and TRL's acceptance."""

import json
from collections import Counter

import pytest

from postmix.judge import PairsConfig, make_pairs
from postmix.schemas import PreferenceRecord

ASPECTS = ("helpfulness", "honesty")


def rated_row(cid, pid, model, scores, response=None):
    aspects = {a: {"score": s, "rationale": "r"} for a, s in zip(ASPECTS, scores, strict=True)}
    rating = {"completion_id": cid, "prompt_id": pid, "judge_model": "judge", "aspects": aspects}
    return {"id": cid, "prompt_id": pid, "prompt": [{"role": "user", "content": f"q {pid}"}],
            "response": response or f"response {cid}", "model": model, "sampling": "{}",
            "source": "s", "meta": "{}", "rating": json.dumps(rating),
            "score": sum(scores) / len(scores)}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# prompt A: 5 > 4 > 2 (means)   prompt B: all tied   prompt C: margin 0.5 only
# prompt D: one completion      prompt E: lower one says the same thing as the best
ROWS = [
    rated_row("a1", "A", "big", (5, 5)), rated_row("a2", "A", "mid", (4, 4)),
    rated_row("a3", "A", "small", (2, 2), response="short"),
    rated_row("b1", "B", "big", (3, 3)), rated_row("b2", "B", "mid", (3, 3)),
    rated_row("c1", "C", "big", (4, 4)), rated_row("c2", "C", "mid", (4, 3)),
    rated_row("d1", "D", "big", (5, 5)),
    rated_row("e1", "E", "big", (5, 5), response="same"), rated_row("e2", "E", "mid", (1, 1), response="same"),
]


def outcome(tmp_path, **config):
    result = make_pairs(write(tmp_path / "rated.jsonl", ROWS), tmp_path / "pairs.jsonl",
                        PairsConfig(**config))
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    rejects = Counter(json.loads(line)["reason"] for line in (tmp_path / "pairs.rejects.jsonl").read_text().splitlines())
    return result.report, pairs, rejects


def ids(pair):
    meta = json.loads(pair["meta"])
    return meta["chosen_id"], meta["rejected_id"]


def test_best_vs_random_lower_with_margin(tmp_path):
    report, pairs, rejects = outcome(tmp_path, min_margin=1.0)
    assert [ids(p)[0] for p in pairs] == ["a1"]
    assert ids(pairs[0])[1] in {"a2", "a3"}  # both are >= 1.0 below the best
    assert rejects == {"tie": 1, "below_margin": 1, "single_completion": 1,
                       "identical_responses": 1}
    assert report.rows_in == 5 and report.rows_out == 1


def test_random_lower_pick_is_seeded_and_varies_with_the_seed(tmp_path):
    picks = {ids(outcome(tmp_path, seed=s)[1][0])[1] for s in range(12)}
    assert picks == {"a2", "a3"}
    assert outcome(tmp_path, seed=3)[1] == outcome(tmp_path, seed=3)[1]


def test_best_vs_worst_and_all_pairs(tmp_path):
    _, pairs, rejects = outcome(tmp_path, strategy="best-vs-worst")
    assert sorted(ids(p) for p in pairs) == [("a1", "a3"), ("c1", "c2")]
    assert rejects == {"tie": 1, "single_completion": 1, "identical_responses": 1}
    report, pairs, rejects = outcome(tmp_path, strategy="all-pairs", min_margin=1.0)
    assert sorted(ids(p) for p in pairs) == [("a1", "a2"), ("a1", "a3"), ("a2", "a3")]
    assert rejects == {"tie": 1, "below_margin": 1, "single_completion": 1,
                       "identical_responses": 1}
    assert report.rows_in == 3 + 4


def test_aspect_selection_changes_the_score(tmp_path):
    # on honesty alone prompt C is a full point apart (4 vs 3)
    _, pairs, _ = outcome(tmp_path, aspects=["honesty"], min_margin=1.0)
    assert ("c1", "c2") in [ids(p) for p in pairs]
    pair = next(p for p in pairs if ids(p) == ("c1", "c2"))
    assert pair["chosen_score"] == 4.0 and pair["rejected_score"] == 3.0
    assert json.loads(pair["judge"])["aspects"] == ["honesty"]


def test_rows_and_stats(tmp_path):
    report, pairs, _ = outcome(tmp_path, strategy="best-vs-worst")
    record = PreferenceRecord.model_validate(pairs[0])
    assert record.chosen[0].role == "assistant" and record.prompt[-1].role == "user"
    assert record.chosen_model == "big" and record.rejected_model == "small"
    d = report.details
    # pairs: a1(big) beats a3(small), c1(big) beats c2(mid)
    assert d["win_rate_by_model"] == {"big": 1.0, "mid": 0.0, "small": 0.0}
    # "response a1" vs "short": longer; "response c1" vs "response c2": same length
    assert d["chosen_longer_fraction"] == 0.5 and d["warnings"] == []


def test_length_bias_warning(tmp_path):
    rows = [rated_row(f"x{i}", f"P{i}", "m", (5, 5), response="long " * 20) for i in range(4)]
    rows += [rated_row(f"y{i}", f"P{i}", "n", (1, 1), response="brief") for i in range(4)]
    result = make_pairs(write(tmp_path / "r.jsonl", rows), tmp_path / "p.jsonl")
    assert result.report.details["chosen_longer_fraction"] == 1.0
    assert "length bias" in result.report.details["warnings"][0]


def test_unreadable_rows_and_missing_aspects_are_rejects(tmp_path):
    rows = ROWS[:3] + [{"id": "bad", "prompt_id": "Z"}]
    path = write(tmp_path / "r.jsonl", rows)
    with open(path, "a") as f:
        f.write("{not json\n")
    result = make_pairs(path, tmp_path / "p.jsonl", PairsConfig())
    assert result.report.rejected == {"bad_row": 1, "malformed_json": 1}
    from postmix.errors import ConfigError

    with pytest.raises(ConfigError, match="--aspect "):
        make_pairs(path, tmp_path / "p2.jsonl", PairsConfig(aspects=["humour"]))


def test_trl_dpo_trainer_accepts_the_pairs(tmp_path, tiny_model_dir):
    pytest.importorskip("trl")
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = [rated_row(f"x{i}", f"P{i}", "m", (5, 4)) for i in range(4)]
    rows += [rated_row(f"y{i}", f"P{i}", "n", (1, 2)) for i in range(4)]
    make_pairs(write(tmp_path / "r.jsonl", rows), tmp_path / "pairs.jsonl")
    dataset = datasets.load_dataset("json", data_files=str(tmp_path / "pairs.jsonl"), split="train")
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                       report_to=[], save_strategy="no", logging_steps=1, use_cpu=True),
        train_dataset=dataset, processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    trainer.train()
    assert trainer.state.global_step == 1
