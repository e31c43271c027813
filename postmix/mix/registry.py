"""The mix registry: a folder with a SQLite catalogue and one folder per published version.

Layout under the registry home (``home`` argument, else ``$POSTMIX_HOME``, else ``./.postmix``)::

    catalogue.sqlite             mixes, versions, sources, runs and evals (lineage:
                                 mix version -> training run -> eval scores)
    mixes/<name>/<N>/            manifest.json, spec.yaml, data/shard-*.parquet,
                                 provenance.parquet, rejects.parquet
    tmp/build-<pid>-<token>/     builds in progress (never read by anything but their builder)

Publishing is atomic: a build writes its whole version folder under ``tmp/``, then, inside one
``BEGIN IMMEDIATE`` transaction (which serialises version-number allocation across processes),
renames it to ``mixes/<name>/<N>`` and inserts its catalogue rows. The catalogue is the only
source of truth: a folder whose transaction never committed (the process died between the rename
and the commit) is invisible and is removed by the next publish of that name.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from postmix.errors import ConfigError, PostmixError
from postmix.pausepoints import pause

HOME_ENV = "POSTMIX_HOME"
DEFAULT_HOME = ".postmix"
CATALOGUE = "catalogue.sqlite"
MANIFEST = "manifest.json"
BUSY_TIMEOUT_S = 120.0  # a concurrent publish holds the lock for a rename and a few inserts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mixes (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES mixes(name),
    version INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    rows INTEGER NOT NULL,
    parent INTEGER,
    created_at TEXT NOT NULL,
    postmix_version TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    source TEXT NOT NULL,
    location TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    rows INTEGER NOT NULL,
    tokens INTEGER,
    PRIMARY KEY (name, version, source),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    run_json TEXT NOT NULL,
    PRIMARY KEY (name, version, run_id),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE IF NOT EXISTS evals (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    results TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    result_json TEXT NOT NULL,
    PRIMARY KEY (name, version, run_id, results),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
"""
# evals.run_id is '' for a result that names a mix version but no training run (a model scored
# and attributed by hand); results is the absolute path of its results.json, so recording the same
# file again replaces its row rather than adding a second one.


class MixNotFoundError(PostmixError):
    """A mix name or version that the registry does not hold."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def registry_home(home: str | Path | None = None) -> Path:
    # absolute, so a ResolvedMix.path stays valid if the caller changes directory
    return Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().absolute()


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name@N`` -> (name, N); ``name`` or ``name@latest`` -> (name, None)."""
    name, sep, version = str(ref).strip().partition("@")
    if not name:
        raise MixNotFoundError(f"empty mix reference {ref!r}: use name or name@N")
    if not sep or version in ("", "latest"):
        return name, None
    digits = version[1:] if version[:1] in ("v", "V") else version
    if not digits.isdigit() or int(digits) < 1:
        raise MixNotFoundError(
            f"bad version in {ref!r}: use name@N with N = 1, 2, ... or name@latest"
        )
    return name, int(digits)


@dataclass
class ResolvedMix:
    """One published mix version. ``dataset`` loads the shards on first access."""

    name: str
    version: int
    content_hash: str
    kind: str
    rows: int
    path: Path
    created_at: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))

    def shard_paths(self) -> list[Path]:
        return [self.path / shard["file"] for shard in self.manifest["shards"]]

    def table(self, columns: list[str] | None = None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from postmix.schemas import FEATURES

        schema = FEATURES[self.kind].arrow_schema
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        tables = [pq.read_table(p, columns=columns) for p in self.shard_paths()]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        return table.cast(schema)

    @cached_property
    def dataset(self):
        import datasets

        # the content hash is a true fingerprint of these rows, and saves datasets hashing them
        return datasets.Dataset(self.table(), fingerprint=self.content_hash)


class Registry:
    def __init__(self, home: str | Path | None = None):
        self.home = registry_home(home)
        self.catalogue = self.home / CATALOGUE
        self.mixes = self.home / "mixes"
        self.tmp = self.home / "tmp"

    # ------------------------------------------------------------------ connection

    @contextmanager
    def connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; with ``write`` the body runs in one ``BEGIN IMMEDIATE`` transaction."""
        if not write and not self.catalogue.exists():
            # an empty registry: nothing to read, nothing to create
            conn = sqlite3.connect(":memory:")
            conn.executescript(_SCHEMA)
        else:
            self.home.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.catalogue, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if write:
                conn.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        with self.connect() as conn:
            return [r["name"] for r in conn.execute("SELECT name FROM mixes ORDER BY name")]

    def list_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT name, version, content_hash, kind, rows, parent, created_at FROM versions"
        args: tuple[Any, ...] = ()
        if name is not None:
            query += " WHERE name = ?"
            args = (name,)
        with self.connect() as conn:
            return [dict(r) for r in conn.execute(query + " ORDER BY name, version", args)]

    def resolve(self, ref: str) -> ResolvedMix:
        name, version = parse_ref(ref)
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name, version, content_hash, kind, rows, created_at FROM versions "
                "WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
            if not rows:
                known = [r["name"] for r in conn.execute("SELECT name FROM mixes ORDER BY name")]
                listing = ", ".join(known) if known else "none yet"
                raise MixNotFoundError(
                    f"no mix named {name!r} in {self.home} (mixes: {listing}; "
                    "build one with `postmix mix build spec.yaml` or set --home / POSTMIX_HOME)"
                )
        chosen = (
            rows[-1]
            if version is None
            else next((r for r in rows if r["version"] == version), None)
        )
        if chosen is None:
            have = ", ".join(f"{name}@{r['version']}" for r in rows)
            raise MixNotFoundError(f"mix {name!r} has no version {version} (versions: {have})")
        return ResolvedMix(
            name=chosen["name"], version=chosen["version"], content_hash=chosen["content_hash"],
            kind=chosen["kind"], rows=chosen["rows"], created_at=chosen["created_at"],
            path=self.version_path(chosen["name"], chosen["version"]),
        )

    def version_path(self, name: str, version: int) -> Path:
        return self.mixes / name / str(version)

    def sources(self, name: str, version: int) -> list[dict[str, Any]]:
        with self.connect() as conn:
            return [dict(r) for r in conn.execute(
                "SELECT source, location, fingerprint, rows, tokens FROM sources "
                "WHERE name = ? AND version = ? ORDER BY position", (name, version))]

    def runs(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        query, args = (
            "SELECT name, version, run_id, recorded_at, run_json FROM runs WHERE name = ?",
            [name],
        )
        if version is not None:
            query += " AND version = ?"
            args.append(version)
        with self.connect() as conn:
            rows = conn.execute(query + " ORDER BY recorded_at, run_id", args).fetchall()
        return [
            {
                "ref": f"{r['name']}@{r['version']}",
                "recorded_at": r["recorded_at"],
                **json.loads(r["run_json"]),
            }
            for r in rows
        ]

    def evals(self, name: str | None = None, version: int | None = None) -> list[dict[str, Any]]:
        """Recorded eval results, oldest first: ``ref``, ``run_id`` ('' for none), ``results``
        (path of results.json), ``recorded_at`` and ``result`` (the EvalResult as a dict)."""
        query, args = "SELECT * FROM evals WHERE 1 = 1", []
        if name is not None:
            query += " AND name = ?"
            args.append(name)
        if version is not None:
            query += " AND version = ?"
            args.append(version)
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'evals'").fetchone() is None:
                return []  # a catalogue written before evals were recorded
            rows = conn.execute(query + " ORDER BY recorded_at, name, version, run_id, results",
                                args).fetchall()
        return [{"ref": f"{r['name']}@{r['version']}", "name": r["name"], "version": r["version"],
                 "run_id": r["run_id"], "results": r["results"], "recorded_at": r["recorded_at"],
                 "result": json.loads(r["result_json"])} for r in rows]

    def find_run(self, run_id: str) -> dict[str, Any] | None:
        """The registered run with this id (any mix), as ``runs`` gives it, or None."""
        with self.connect() as conn:
            row = conn.execute("SELECT name, version FROM runs WHERE run_id = ? "
                               "ORDER BY recorded_at DESC LIMIT 1", (run_id,)).fetchone()
        if row is None:
            return None
        return next(r for r in self.runs(row["name"], row["version"]) if r["run_id"] == run_id)

    # ------------------------------------------------------------------ writing

    def staging_dir(self) -> Path:
        """A fresh folder for a build in progress; stale ones of dead builders are removed first."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp.glob("build-*"):
            pid = stale.name.split("-")[1] if stale.name.count("-") >= 2 else ""
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        folder = self.tmp / f"build-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        return folder

    def publish(self, staged: Path, *, name: str, kind: str, content_hash: str, rows: int,
                spec: dict[str, Any], sources: list[dict[str, Any]],
                finish_manifest: Any, selection: str | None = None) -> tuple[ResolvedMix, bool]:
        """Publish ``staged`` as the next version of ``name``; ``(version, created)``.

        When the latest version already has ``content_hash`` (and the same ``selection``
        fingerprint: attribute sidecars and ``where`` filters, see ``postmix.mix.builder``)
        nothing is written and that version is returned with ``created=False``.
        ``finish_manifest(version, parent, created_at)`` writes the manifest fields known only
        once the version number is allocated.
        """
        from postmix import __version__

        target: Path | None = None
        try:
            with self.connect(write=True) as conn:
                known = conn.execute("SELECT kind FROM mixes WHERE name = ?", (name,)).fetchone()
                if known is not None and known["kind"] != kind:
                    raise ConfigError(
                        f"mix {name!r} holds {known['kind']} rows; this spec builds {kind}: "
                        "rename the mix"
                    )
                latest = conn.execute(
                    "SELECT version, content_hash FROM versions WHERE name = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (name,),
                ).fetchone()
                if (latest is not None and latest["content_hash"] == content_hash
                        and self._selection(name, latest["version"]) == selection):
                    shutil.rmtree(staged, ignore_errors=True)
                    return self.resolve(f"{name}@{latest['version']}"), False
                version = 1 if latest is None else latest["version"] + 1
                parent = None if latest is None else latest["version"]
                created_at = now()
                finish_manifest(version, parent, created_at)
                target = self.version_path(name, version)
                if target.exists():  # left by a publish that died before its commit: never visible
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                pause("mix:in_publish")
                if known is None:
                    conn.execute("INSERT INTO mixes (name, kind, created_at) VALUES (?, ?, ?)",
                                 (name, kind, created_at))
                conn.execute(
                    "INSERT INTO versions (name, version, content_hash, kind, rows, parent, "
                    "created_at, postmix_version, spec_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        version,
                        content_hash,
                        kind,
                        rows,
                        parent,
                        created_at,
                        __version__,
                        json.dumps(spec, sort_keys=True),
                    ),
                )
                conn.executemany(
                    "INSERT INTO sources (name, version, position, source, location, fingerprint, "
                    "rows, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            name,
                            version,
                            i,
                            s["name"],
                            s["location"],
                            s["fingerprint"],
                            s["rows"],
                            s.get("tokens"),
                        )
                        for i, s in enumerate(sources)
                    ],
                )
        except BaseException:
            if target is not None and target.exists():
                # the transaction rolled back: so does the folder
                shutil.rmtree(target, ignore_errors=True)
            raise
        return ResolvedMix(name=name, version=version, content_hash=content_hash, kind=kind,
                           rows=rows, path=target, created_at=created_at), True

    def _selection(self, name: str, version: int) -> str | None:
        manifest = self.version_path(name, version) / MANIFEST
        return json.loads(manifest.read_text(encoding="utf-8")).get("selection_fingerprint")

    def record_run(self, ref: str, run: dict[str, Any]) -> None:
        resolved = self.resolve(ref)
        run = dict(run)
        run_id = str(run.get("run_id") or uuid.uuid4().hex)
        run["run_id"] = run_id
        with self.connect(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO runs (name, version, run_id, recorded_at, run_json) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    resolved.name,
                    resolved.version,
                    run_id,
                    now(),
                    json.dumps(run, sort_keys=True, default=str),
                ),
            )


    def record_eval(self, ref: str, run_id: str | None, results: str | Path,
                    result: dict[str, Any], *,
                    inside: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Register an eval result (an ``EvalResult`` as a dict) against a mix version and run;
        the same results file recorded again replaces its row. ``inside(entry)`` runs within the
        write transaction, so what it writes elsewhere (the run card's copy) is serialised with
        every other recorder of this registry."""
        resolved = self.resolve(ref)
        row = (resolved.name, resolved.version, run_id or "", str(Path(results).absolute()),
               now(), json.dumps(result, sort_keys=True, default=str))
        entry = {"ref": resolved.ref, "name": resolved.name, "version": resolved.version,
                 "run_id": row[2], "results": row[3], "recorded_at": row[4], "result": result}
        with self.connect(write=True) as conn:
            conn.execute("INSERT OR REPLACE INTO evals (name, version, run_id, results, "
                         "recorded_at, result_json) VALUES (?, ?, ?, ?, ?, ?)", row)
            if inside is not None:
                inside(entry)
        return entry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
