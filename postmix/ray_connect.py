"""Joining or starting Ray, once per process: the one piece of Ray set-up that both the Ray
executor (``postmix.scale``) and the ``vllm-ray`` model backend (``postmix.llm.vllm_ray``) need,
kept below both so that ``llm`` never imports ``scale``. Ray itself is imported only when called.
"""

from __future__ import annotations

import logging
import os

from postmix.errors import PostmixError


class RayUnavailableError(PostmixError):
    """Ray is not installed, or the named cluster cannot be reached."""


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` or ``RAY_ADDRESS``, else one running on this machine
    (``ray start --head``), else start a local Ray with ``num_cpus``; a process that already
    called ``ray.init`` keeps its session."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("--engine ray needs Ray Data: pip install 'postmix[ray]' "
                                  "(or 'ray[data]')") from None
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailableError(
                f"cannot join the Ray cluster at {address!r} ({str(exc).splitlines()[0]}): "
                "check the address, or unset RAY_ADDRESS for a local Ray") from None
        return
    try:
        ray.init(address="auto", **quiet)  # a cluster started here with `ray start --head`
    except ConnectionError:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
