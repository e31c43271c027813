"""Claiming a command's outputs before it writes them, so a run can neither destroy its own
input nor share an output with another run.

``claim_outputs(outputs, inputs=...)`` refuses in one line (``ConfigError``, exit 2) when an
output - or the rejects/report/failures file beside it - is one of the inputs or another output
of the same command, and takes an exclusive lock per output for as long as the command runs:
a second run writing the same file is refused at once (``OutputBusyError``) instead of splicing
its rows into the first one's. The lock is ``fcntl.flock`` on a file named by the hash of the
output's absolute path in the user's cache (``~/.cache/postmix/locks``, or under
``$POSTMIX_CACHE_DIR``), so nothing is left beside the data; the kernel drops the lock when the
process dies, so a killed run never leaves a stale one. (Two users writing one output are not
kept apart: each has their own lock folder.)

``publish_mode`` gives a file written through a private temporary file (``mkstemp`` creates them
0600) the mode an ordinary ``open`` would have, so a teammate or a training job under another
user can read curated data the umask allows them to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import xxhash

from postmix.errors import ConfigError, PostmixError
from postmix.io.paths import cache_folder

try:  # POSIX; elsewhere outputs are not locked (the same-path check still applies)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class OutputBusyError(PostmixError):
    """Another run holds the lock of an output this run would write."""


def _key(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))  # one file, one key, via links


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_distinct(outputs: Iterable[str | Path], inputs: Iterable[str | Path] = ()) -> None:
    """One-line refusal when an output is an input, or two outputs are one file."""
    local_inputs = [
        _key(i) for i in inputs if i is not None and not str(i).startswith(("hf:", "pkg://"))
    ]
    seen: list[Path] = []
    for output in (_key(o) for o in outputs if o is not None):
        for source in local_inputs:
            if _same(output, source):
                raise ConfigError(f"{output} is both an input and an output of this command: "
                                  "write the output elsewhere (the input would be destroyed)")
        for other in seen:
            if _same(output, other):
                raise ConfigError(
                    f"{output} would be written twice by this command (two outputs share "
                    "it): give the outputs distinct names"
                )
        seen.append(output)


def check_writable(output: str | Path) -> None:
    """Refuse before any work when ``output``'s folder cannot be written (read-only, not ours)."""
    folder = _key(output).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of {output}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK) or _read_only_mount(folder):
        raise ConfigError(f"cannot write into {folder} (read-only): write the output elsewhere")


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_replaceable(target: str | Path) -> None:
    """A folder under an output's name (a Ray run's shards) is replaced only when it holds
    Parquet shards alone."""
    target = Path(target)
    if target.is_dir():
        stray = [p.name for p in target.iterdir() if not p.name.endswith(".parquet")]
        if stray:
            raise ConfigError(f"{target} is a folder with other files than Parquet shards "
                              f"({stray[0]}): remove it or pick another output")


def check_own_report(output: str | Path, report: str | Path) -> None:
    """Reports and rejects are named after the output's stem, so ``x.jsonl`` then ``x.parquet`` in
    one folder would share ``x.report.json``: refuse to replace the audit trail of another output
    that still exists."""
    report = Path(report)
    if not report.is_file():
        return
    try:
        previous = json.loads(report.read_text(encoding="utf-8")).get("outputs", {}).get("data")
    except (OSError, ValueError, AttributeError):
        return
    if previous and Path(previous).exists() and not _same(_key(previous), _key(output)):
        raise ConfigError(
            f"{report} is the report of {previous}; writing {output} would replace it and "
            "its rejects: give this output another name (or remove the other output)"
        )


@contextmanager
def lock_output(path: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` for the block; refuse at once if another run has it."""
    path = _key(path)
    if fcntl is None:
        yield
        return
    lock = cache_folder("locks") / f"{xxhash.xxh3_64_hexdigest(str(path).encode())}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+")  # noqa: SIM115 - held open for the whole block
    except OSError:  # no writable cache folder (a read-only home): run unlocked rather than not
        yield
        return
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(
                f"another postmix run is writing {path} (it holds {lock}): wait for it "
                "to finish, or write to another output"
            ) from None
        yield
    finally:
        handle.close()  # closing drops the lock


@contextmanager
def claim_outputs(
    outputs: Iterable[str | Path], *, inputs: Iterable[str | Path] = ()
) -> Iterator[None]:
    """``check_distinct`` then ``lock_output`` on each output, for the block."""
    outputs = [o for o in outputs if o is not None]
    check_distinct(outputs, inputs)
    for output in outputs:
        check_writable(output)
        check_replaceable(output)
    with ExitStack() as stack:
        for output in outputs:
            stack.enter_context(lock_output(output))
        yield


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (``os.umask`` can only
    be read by setting it, which races with threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def publish_mode(path: str | Path) -> None:
    """Give ``path`` the mode ``open`` would have given it under the current umask
    (0666 & ~umask)."""
    os.chmod(path, 0o666 & ~current_umask())
