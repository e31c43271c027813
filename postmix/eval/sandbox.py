"""Running a model's code against a benchmark's tests in a subprocess, with limits.

What it does: each program runs in a fresh ``python -I`` (isolated mode: no ``PYTHON*``
variables, no user site-packages, not the caller's folder on the path) in a new empty
temporary folder that is deleted afterwards, in its own session (so a timeout kills every
process it started), with an environment of only ``PATH`` and ``LANG`` (no proxies, no API
keys, no ``HOME``), and under rlimits: address space (``memory_mb``), CPU seconds, file size
(16 MB), no core dumps; a wall-clock ``timeout`` ends it too. ``socket`` is replaced before the
program runs, so ordinary network calls fail.

What it does not do: it is not a security boundary. The program runs as the same user, can read
whatever that user can read and write outside its folder, and can undo the socket guard (it is a
guard against accidents, e.g. a test that downloads). Run untrusted model code only inside a
container or VM with no network; ``postmix eval`` runs code only with ``--allow-code-execution``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FILE_LIMIT = 16 * 2**20
OUTPUT_KEPT = 2000  # characters of stderr kept as the reason's detail

# Run first in the program: no network by accident (see the module docstring for what this is not)
_NO_NETWORK = '''\
import socket as _socket
def _refused(*args, **kwargs):
    raise OSError("network disabled in the postmix sandbox")
_socket.socket = _refused
_socket.create_connection = _refused
_socket.getaddrinfo = _refused
del _socket, _refused
'''


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    reason: str  # passed | failed | timeout | memory | error
    detail: str = ""


def _limits(timeout: float, memory_mb: int):
    def apply() -> None:
        memory = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_program(program: str, *, timeout: float = 10.0, memory_mb: int = 1024) -> SandboxResult:
    """Run ``program`` (a whole Python file: solution + tests); passed when it exits 0."""
    with tempfile.TemporaryDirectory(prefix="postmix-sandbox-") as folder:
        script = Path(folder) / "program.py"
        script.write_text(_NO_NETWORK + program, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", str(script)], cwd=folder, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=_limits(timeout, memory_mb))
        except OSError as exc:
            return SandboxResult(False, "error", f"could not start python: {exc}")
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return SandboxResult(False, "timeout", f"still running after {timeout:g}s")
        finally:
            _kill_group(process)  # children it left behind
    text = stderr.decode("utf-8", "replace")[-OUTPUT_KEPT:]
    if process.returncode == 0:
        return SandboxResult(True, "passed")
    if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and "Error" not in text:
        return SandboxResult(False, "timeout", f"CPU limit ({int(timeout) + 1}s)")
    if "MemoryError" in text:
        return SandboxResult(False, "memory", f"over {memory_mb} MB")
    last = text.strip().splitlines()[-1] if text.strip() else f"exit status {process.returncode}"
    return SandboxResult(False, "failed", last[:300])


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
