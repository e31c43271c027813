"""The registry under process death and concurrency: real subprocesses, SIGKILL, two builders."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from postmix import mix
from postmix.pausepoints import PAUSE_ENV

BUILD = "import sys; from postmix.mix import build; r = build(sys.argv[1], home=sys.argv[2]); print('REF', r.mix.ref)"


def write_source(path: Path, prefix: str, n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"{prefix}-{i:04d}", "source": prefix, "meta": "{}", "messages": [
                {"role": "user", "content": f"{prefix} q {i}"}, {"role": "assistant", "content": f"a {i}"}]}) + "\n")


def write_spec(folder: Path, label: str, count: int) -> Path:
    path = folder / f"{label}.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "kind": "sft", "sources": [{"path": "a.jsonl", "count": count}]}))
    return path


@pytest.fixture
def setup(tmp_path):
    write_source(tmp_path / "a.jsonl", "a", 50)
    return tmp_path, tmp_path / "reg"


def start_build(spec: Path, home: Path, pause: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop(PAUSE_ENV, None)
    if pause:
        env[PAUSE_ENV] = pause
    return subprocess.Popen([sys.executable, "-c", BUILD, str(spec), str(home)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_pause(proc: subprocess.Popen) -> None:
    for line in proc.stdout:
        if line.startswith("postmix-paused"):
            return
    raise AssertionError(f"build never paused: {proc.stderr.read()}")


def catalogue(home: Path) -> dict:
    conn = sqlite3.connect(home / "catalogue.sqlite")
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("mixes", "versions", "sources", "runs")}
    finally:
        conn.close()


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("point", ["before_publish", "in_publish"])
def test_a_build_killed_halfway_leaves_the_registry_as_it_was(setup, point):
    folder, home = setup
    mix.build(write_spec(folder, "one", 10), home=home)
    before_catalogue, before_mixes = catalogue(home), tree(home / "mixes")
    proc = start_build(write_spec(folder, "two", 20), home, pause=f"mix:{point}:60")
    wait_for_pause(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert catalogue(home) == before_catalogue
    assert mix.resolve("m", home=home).version == 1
    assert [v["version"] for v in mix.list_mixes(home=home)] == [1]
    if point == "before_publish":
        assert tree(home / "mixes") == before_mixes
    # the next build takes the number the dead one never committed and clears what it left
    result = mix.build(write_spec(folder, "two", 20), home=home)
    assert result.mix.ref == "m@2" and len(mix.load("m@2", home=home)) == 20
    assert [p.name for p in (home / "tmp").iterdir()] == []
    assert sorted(p.name for p in (home / "mixes" / "m").iterdir()) == ["1", "2"]


def test_two_concurrent_builds_get_distinct_consistent_versions(setup):
    folder, home = setup
    # both pause after writing their shards, then publish at the same moment
    first = start_build(write_spec(folder, "ten", 10), home, pause="mix:before_publish:2")
    second = start_build(write_spec(folder, "twenty", 20), home, pause="mix:before_publish:2")
    outputs = [proc.communicate(timeout=120) for proc in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], [o[1] for o in outputs]
    refs = sorted(line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("REF"))
    assert refs == ["m@1", "m@2"]
    versions = mix.list_mixes(home=home)
    assert sorted(v["rows"] for v in versions) == [10, 20]
    for v in versions:
        resolved = mix.resolve(f"m@{v['version']}", home=home)
        assert resolved.manifest["version"] == v["version"] and resolved.manifest["rows"] == v["rows"]
        assert len(mix.load(resolved.ref, home=home)) == v["rows"]
    parents = {v["version"]: v["parent"] for v in versions}
    assert parents == {1: None, 2: 1}
