"""Is an endpoint up and serving the model it is named for? One ``GET <base_url>/models`` per
endpoint, before a pipeline spends an hour on stages that come before its first model call.

Only HTTP endpoints are probed (``http``/``openai`` backends); offline vLLM needs no server.
A server that answers ``/models`` without the endpoint's model is a problem too (a typo in
``model:`` would otherwise fail every request). The answer never includes the key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from postmix.errors import EndpointError
from postmix.llm.config import EndpointConfig, PoolConfig, redact_url

PROBE_TIMEOUT_S = 5.0


class _KeepKeyAtHome(urllib.request.HTTPRedirectHandler):
    """Follow a redirect, but never carry the key to another host or from https to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        old_parts, new_parts = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if new is not None and (old_parts.netloc != new_parts.netloc
                                or (old_parts.scheme, new_parts.scheme) == ("https", "http")):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_KeepKeyAtHome)


def probe_endpoint(endpoint: EndpointConfig, *, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``endpoint`` answers and lists its model; else what is wrong, in a few words."""
    if endpoint.backend not in ("http", "openai"):
        return None
    where = f"endpoint {endpoint.name!r} ({redact_url(endpoint.base_url)})"
    headers = {"Accept": "application/json"}
    try:
        key = endpoint.api_key()
    except EndpointError as exc:
        return str(exc)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(endpoint.base_url.rstrip("/") + "/models", headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as reply:
            body = json.loads(reply.read(1 << 22) or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):  # a server without /models still serves chat: not a problem
            return None
        return f"{where} answered HTTP {exc.code} to GET /models"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{where} is not reachable: {reason}"
    except ValueError:
        return None  # not JSON: nothing to check the model against
    served = ([m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
              if isinstance(body, dict) else [])
    if served and endpoint.model not in served:
        listed = ", ".join(str(m) for m in served[:5]) + (", ..." if len(served) > 5 else "")
        return f"{where} does not serve model {endpoint.model!r} (it serves {listed})"
    return None


def probe_pool(pool: PoolConfig, *, timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """The problems of every endpoint of ``pool`` (probed in parallel), empty when all are fine."""
    with ThreadPoolExecutor(max_workers=min(16, len(pool.endpoints))) as threads:
        answers = list(threads.map(lambda e: probe_endpoint(e, timeout=timeout), pool.endpoints))
    return [a for a in answers if a]
