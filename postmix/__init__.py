"""postmix: post-training data toolkit (curation, judged preferences, versioned mixes,
thin trainers)."""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("postmix")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"


def _numba_cache_outside_the_package() -> None:
    """numba's ``cache=True`` writes compiled kernels beside the source by default: inside
    site-packages that leaves files ``pip uninstall`` does not remove, and the stale folder then
    shadows a later editable install. Keep them in the user's cache folder instead (unless the
    user chose one with NUMBA_CACHE_DIR)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "postmix", "numba")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # no writable home: numba's own default applies
        return
    os.environ["NUMBA_CACHE_DIR"] = path  # inherited by Ray workers and notebook kernels too
    if "numba" in sys.modules:  # imported before postmix: its config has already read the variable
        sys.modules["numba"].config.CACHE_DIR = path


_numba_cache_outside_the_package()

__all__ = ["__version__"]
