"""Issue 14 regressions at the output side: a run never destroys its input, never shares an
output with a concurrent run, never replaces another output's report, writes files other users
may read (umask), and never publishes an empty mix."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from postmix import mix
from postmix.curate.filters import filter_file
from postmix.errors import ConfigError
from postmix.io.claims import OutputBusyError, check_distinct, lock_output

REFUSAL = "As an AI language model, I cannot help with that."


def write_rows(path, n, *, prefix="r", answer="a fine answer"):
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"{prefix}-{i}", "source": prefix, "meta": "{}", "messages": [
                {"role": "user", "content": f"question {prefix} {i}"},
                {"role": "assistant", "content": answer}]}) + "\n")
    return path


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "postmix.cli", *map(str, args)], capture_output=True,
                          text=True, **kwargs)


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path):
    data = write_rows(tmp_path / "x.jsonl", 5)
    before = data.read_bytes()
    proc = cli("curate", "filter", data, "-o", data)
    assert proc.returncode == 2
    assert "is both an input and an output" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert data.read_bytes() == before
    # the rejects file beside the output would be the input: refused the same way
    rejects_named = write_rows(tmp_path / "y.rejects.jsonl", 5)
    with pytest.raises(ConfigError, match="both an input and an output"):
        filter_file(rejects_named, tmp_path / "y.jsonl")
    assert len(rejects_named.read_text().splitlines()) == 5


def test_two_outputs_of_one_command_must_differ(tmp_path):
    with pytest.raises(ConfigError, match="written twice"):
        check_distinct([tmp_path / "a.jsonl", tmp_path / "sub" / ".." / "a.jsonl"])


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    data = write_rows(tmp_path / "x.jsonl", 5)
    out = tmp_path / "out.jsonl"
    with lock_output(out):  # a run in progress
        proc = cli("curate", "filter", data, "-o", out)
        assert proc.returncode == 2 and "another postmix run is writing" in proc.stderr
        assert not out.exists()
        with pytest.raises(OutputBusyError):
            filter_file(data, out)
    assert filter_file(data, out).report.rows_out == 5  # free again once the first is done


def test_a_stage_does_not_replace_another_outputs_report(tmp_path):
    data = write_rows(tmp_path / "x.jsonl", 5)
    filter_file(data, tmp_path / "clean.jsonl")
    with pytest.raises(ConfigError, match="is the report of"):
        filter_file(data, tmp_path / "clean.parquet")
    (tmp_path / "clean.jsonl").unlink()  # the other output is gone: its report may be replaced
    assert filter_file(data, tmp_path / "clean.parquet").report.rows_out == 5


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_outputs_respect_the_umask(tmp_path, suffix):
    data = write_rows(tmp_path / "x.jsonl", 5)
    out = tmp_path / f"out{suffix}"
    code = ("import os, sys; os.umask(0o002); from postmix.curate.filters import filter_file; "
            "filter_file(sys.argv[1], sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(data), str(out)], check=True)
    for path in (out, tmp_path / "out.rejects.jsonl", tmp_path / "out.report.json"):
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o664), path


def test_a_mix_with_no_rows_is_not_published(tmp_path):
    write_rows(tmp_path / "a.jsonl", 4, prefix="a", answer=REFUSAL)  # the refusal filter drops all
    spec = {"name": "m", "kind": "sft", "sources": [{"path": "a.jsonl", "steps": ["filter"]}]}
    with pytest.raises(ConfigError, match="would have no rows, so no version is published: "
                       "a: load 4->4, filter 4->0, take 0->0"):
        mix.build(spec, home=tmp_path / "home", base=tmp_path)
    assert mix.list_mixes(home=tmp_path / "home") == []


def test_a_source_that_gives_no_rows_warns_or_refuses(tmp_path, caplog):
    write_rows(tmp_path / "a.jsonl", 4, prefix="a", answer=REFUSAL)
    write_rows(tmp_path / "b.jsonl", 4, prefix="b")
    sources = [{"path": "a.jsonl", "steps": ["filter"]}, {"path": "b.jsonl"}]
    with caplog.at_level(logging.WARNING, logger="postmix"):
        built = mix.build({"name": "m", "kind": "sft", "sources": sources}, home=tmp_path / "home", base=tmp_path)
    assert built.mix.rows == 4
    assert "source 'a' contributes no rows" in caplog.text
    with pytest.raises(ConfigError, match="source 'a' contributes no rows.*empty_sources: refuse"):
        mix.build({"name": "n", "kind": "sft", "sources": sources, "empty_sources": "refuse"},
                  home=tmp_path / "home", base=tmp_path)


def _no_files_left(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_names_the_file_and_leaves_no_half_output(tmp_path, monkeypatch):
    import errno

    from postmix.io import write as write_module
    from postmix.io.write import OutputWriteError

    data = write_rows(tmp_path / "x.jsonl", 50, answer=REFUSAL)  # every row becomes a reject
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real_dumps = write_module.dumps_row
    calls = {"n": 0}

    def full_after_ten(row):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_dumps(row)

    monkeypatch.setattr(write_module, "dumps_row", full_after_ten)
    with pytest.raises(OutputWriteError, match=r"cannot write .*out\.rejects\.jsonl\.partial: No space left"):
        filter_file(data, out_dir / "out.jsonl")
    assert _no_files_left(out_dir) == []  # neither the output, nor a partial keeping the disk full


def _tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI and the dev VM are root)")
def test_a_really_full_disk_is_one_line_and_exit_2(tmp_path):
    data = write_rows(tmp_path / "x.jsonl", 3000)
    small = tmp_path / "small"
    assert _tmpfs(small, "64k"), "could not mount a tmpfs"
    try:
        proc = cli("curate", "filter", data, "-o", small / "out.jsonl")
        assert proc.returncode == 2, proc.stderr
        assert "cannot write" in proc.stderr and "No space left on device" in proc.stderr
        assert str(small) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert _no_files_left(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_judge_pairs_onto_its_own_input_is_refused_and_the_ratings_kept(tmp_path):
    rated = tmp_path / "rated.jsonl"
    rated.write_text(json.dumps({"id": "c1", "prompt_id": "p1", "prompt": [{"role": "user", "content": "q"}],
                                 "response": "a", "model": "m", "sampling": "{}", "source": "t",
                                 "meta": "{}"}) + "\n")
    before = rated.read_bytes()
    proc = cli("judge", "pairs", rated, "-o", rated)
    assert proc.returncode == 2 and "is both an input and an output" in proc.stderr
    assert rated.read_bytes() == before


def test_two_generate_runs_on_one_output_the_second_is_refused(tmp_path):
    """Issue 14: two `judge generate` runs into one OUT spliced their rows into one .partial."""
    from postmix.judge.generate import GenerateConfig, generate
    from postmix.llm import EndpointConfig, PoolConfig
    from postmix.testing.openai_server import FakeOpenAIServer

    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n"
                                              for i in range(40)))
    out = tmp_path / "c.jsonl"
    with FakeOpenAIServer(latency=0.05) as server:
        pool = PoolConfig(endpoints=[EndpointConfig(name="a", model="fake-model", base_url=server.base_url,
                                                    max_concurrency=2)])
        first = subprocess.Popen([sys.executable, "-m", "postmix.cli", "judge", "generate", str(tmp_path / "p.jsonl"),
                                  "-o", str(out), "--endpoints", str(_pool_file(tmp_path, server.base_url))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(600):  # until the first run holds its outputs
                if any(r.path.endswith("/chat/completions") for r in server.requests):
                    break
                time.sleep(0.05)
            with pytest.raises(OutputBusyError, match="another postmix run is writing"):
                generate(tmp_path / "p.jsonl", out, pool, GenerateConfig(), progress=False)
        finally:
            stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line whole
    expected = 40 * GenerateConfig().n
    assert len(rows) == expected and len({r["id"] for r in rows}) == expected


def _pool_file(folder, base_url):
    path = folder / "pool.yaml"
    path.write_text(f"endpoints:\n  - {{name: a, model: fake-model, base_url: '{base_url}', max_concurrency: 2}}\n")
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root (CI and the dev VM are root)")
def test_a_read_only_output_folder_is_refused_before_any_work(tmp_path):
    data = write_rows(tmp_path / "x.jsonl", 5)
    folder = tmp_path / "ro"
    folder.mkdir()
    assert subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]).returncode == 0
    try:
        proc = cli("curate", "filter", data, "-o", folder / "out.jsonl")
        assert proc.returncode == 2 and "read-only" in proc.stderr and str(folder) in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_local_run_replaces_an_earlier_ray_runs_shard_folder(tmp_path):
    """Review finding: after a Ray run made OUT.parquet a shard folder, a local run to the same
    OUT did all its work and then failed to rename over the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = write_rows(tmp_path / "x.jsonl", 5)
    out = tmp_path / "out.parquet"
    out.mkdir()
    pq.write_table(pa.table({"id": ["old"]}), out / "part-00000.parquet")
    assert filter_file(data, out).report.rows_out == 5
    assert out.is_file() and pq.read_table(out).num_rows == 5
    other = tmp_path / "other.parquet"
    other.mkdir()
    (other / "notes.txt").write_text("not a shard")
    with pytest.raises(ConfigError, match="other files than Parquet shards"):
        filter_file(data, other)
    assert (other / "notes.txt").exists()
