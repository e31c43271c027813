"""Named points where a test can stop a run: with ``POSTMIX_TEST_PAUSE=<point>:<seconds>`` in
its environment, a run that reaches ``<point>`` prints ``postmix-paused <point> pid=<pid>`` on
stdout and sleeps, so the fault tests can SIGKILL or SIGINT it exactly there (between two
writes, inside a publish) instead of guessing with timers. Unset, a point costs one dict lookup.
"""

from __future__ import annotations

import os
import time

PAUSE_ENV = "POSTMIX_TEST_PAUSE"


def pause(point: str) -> None:
    setting = os.environ.get(PAUSE_ENV)
    if not setting:
        return
    where, _, seconds = setting.rpartition(":")
    if not seconds.replace(".", "", 1).isdigit():  # no seconds given
        where, seconds = setting, "60"
    if where == point:
        print(f"postmix-paused {point} pid={os.getpid()}", flush=True)
        time.sleep(float(seconds or 60))
