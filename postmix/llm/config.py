"""Endpoints, pools and retry policy, as pydantic models loadable from YAML.

An endpoint names the *environment variable* that holds its API key (``api_key_env``), never the
key itself, so a config file can be committed, copied into a report and shared safely.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from postmix import yamlfile
from postmix.errors import ConfigError, EndpointError
from postmix.io.errors_text import loc_text


def redact_url(url: str) -> str:
    """``http://user:pass@host/v1`` -> ``http://host/v1``: credentials never reach a report or
    log."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the forms providers' keys take (OpenAI, HF, GitHub, Groq, xAI, Google, AWS, Stripe-style)
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_", "gsk_",
                 "xai-", "AIza", "AKIA", "ASIA", "pk-", "rk_live_", "rk_test_")


def looks_like_a_key(value: str) -> bool:
    """Not a variable name but a secret: not a valid name at all (``sk-live-...``), or a long
    mixed-case run of letters and digits with no underscore, as keys are and names are not."""
    if not _ENV_NAME.match(value) or (len(value) >= 16 and value.startswith(_KEY_PREFIXES)):
        return True
    mixed = any(c.isdigit() for c in value) and any(c.islower() for c in value)
    return len(value) >= 20 and mixed and ("_" not in value or len(value) >= 32)


class EndpointConfig(BaseModel):
    """One server that answers chat requests for one model."""

    # hide_input_in_errors: a validation error never prints a value (it could be a pasted key)
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(min_length=1, description="Label in reports and the ledger.")
    model: str = Field(min_length=1, description="Model name sent in each request; endpoints that "
                       "share it form one pool that spreads load.")
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible root, e.g. "
                          "`vllm serve` at http://host:8000/v1 or https://api.openai.com/v1.")
    api_key_env: str | None = Field(None, description="Name of the environment variable holding "
                                    "the key; None sends no Authorization header (local vLLM).")
    backend: Literal["http", "openai", "vllm", "vllm-ray", "transformers"] = Field(
        "http", description="http: thin aiohttp client (fastest, measured in "
        "benchmarks/bench_judge.py); openai: the official AsyncOpenAI client; vllm: vllm.LLM "
        "offline in this process (GPU node); vllm-ray: offline batch generation with vllm.LLM "
        "replicas on a Ray cluster (postmix.llm.vllm_ray), through Ray Data map_batches; "
        "transformers: batched generate() of a local or Hub model in this process "
        "(postmix.llm.transformers_local), for small models on CPU, tests and the quickstart.")
    max_concurrency: int = Field(64, ge=1, description="Requests in flight (and sockets open) at "
                                 "once; more callers queue. 64 saturates a single vLLM replica.")
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0, description="Budget on prompt+max_tokens "
                                            "estimated before sending (chars/4).")
    price_input_per_m: float = Field(0.0, ge=0, description="USD per million prompt tokens.")
    price_output_per_m: float = Field(0.0, ge=0, description="USD per million completion tokens.")
    sampling: dict[str, Any] = Field(default_factory=dict, description="Default sampling params "
                                     "(temperature, top_p, max_tokens, ...); a request overrides.")
    timeout: float = Field(
        120.0, gt=0, description="Seconds for one attempt, after a slot is free."
    )
    vllm_args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for "
                                      "vllm.LLM when backend is vllm (tensor_parallel_size, ...).")
    vllm_batch_size: int = Field(256, ge=1, description="Requests per vllm.LLM.chat call.")
    transformers_batch_size: int = Field(
        8, ge=1, description="transformers: prompts per generate() call (left-padded together).")
    transformers_args: dict[str, Any] = Field(
        default_factory=dict, description="transformers: keyword arguments for "
        "AutoModelForCausalLM.from_pretrained (dtype, device_map, trust_remote_code, revision).")
    ray_replicas: int = Field(
        1,
        ge=1,
        description="vllm-ray: vllm.LLM actors (model replicas) in the "
        "Ray cluster; one per GPU node (or per tensor-parallel group) is usual.",
    )
    ray_num_gpus: float | None = Field(
        None,
        ge=0,
        description="vllm-ray: GPUs per replica; None = "
        "tensor_parallel_size x pipeline_parallel_size of vllm_args.",
    )
    ray_address: str | None = Field(
        None,
        description="vllm-ray: Ray cluster address; None = RAY_ADDRESS, "
        "else a cluster running on this machine, else a local Ray.",
    )
    ray_runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description="vllm-ray: Ray runtime_env "
        "of the replicas (pip, env_vars, py_modules), when the "
        "workers' Python lacks vLLM or needs settings.",
    )

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        if value is not None and looks_like_a_key(value):
            raise ValueError(
                "api_key_env names the environment variable that holds the key, and "
                "this value looks like a key itself (not shown here): export it, e.g. "
                "`export POSTMIX_API_KEY=...`, and write `api_key_env: POSTMIX_API_KEY`"
            )
        return value

    def api_key(self) -> str | None:
        """The key from the environment; a clear error when the variable is named but unset."""
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise EndpointError(f"endpoint {self.name!r} needs an API key: set the environment "
                                f"variable {self.api_key_env}")
        return value

    def public_dict(self) -> dict[str, Any]:
        """For reports: everything but credentials embedded in the URL."""
        data = self.model_dump(mode="json")
        data["base_url"] = redact_url(self.base_url)
        return data


class RetryConfig(BaseModel):
    """How hard to try before an item goes to the failures file."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(5, ge=1, description="HTTP attempts per request (429, 5xx, timeouts, "
                              "dropped connections, unreadable replies); 5 rides out a restart.")
    backoff_base: float = Field(0.5, ge=0, description="First wait in seconds; doubles per "
                                "attempt, with +-50% jitter so retries do not arrive in lockstep.")
    backoff_max: float = Field(30.0, ge=0, description="Cap on one wait.")
    retry_after_max: float = Field(120.0, ge=0, description="Cap on a server's Retry-After.")
    parse_retries: int = Field(2, ge=0, description="Re-asks after an answer that does not match "
                               "the JSON schema, before recording parse_error (or truncated).")
    truncated_growth: float = Field(2.0, ge=1, description="A structured answer cut off by "
                                    "max_tokens (finish_reason: length) is re-asked with "
                                    "max_tokens times this, not the limit that cut it off.")


class HealthConfig(BaseModel):
    """When an endpoint of a multi-endpoint pool is taken out, and when it is tried again.

    An endpoint is never taken out while it is the last healthy one serving its model: then
    there is nowhere else to send its requests, and plain retries with backoff apply.
    """

    model_config = ConfigDict(extra="forbid")

    failures_to_eject: int = Field(
        3,
        ge=1,
        description="Consecutive connection errors, timeouts or "
        "5xx replies that take an endpoint out; 3 tells a dead server from "
        "one dropped connection.",
    )
    cooldown: float = Field(30.0, gt=0, description="Seconds out before one probe request is let "
                            "through; long enough for a `vllm serve` restart to come back up.")


class PoolConfig(BaseModel):
    """Endpoints for one or more models, and the retry policy shared by all of them."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    endpoints: list[EndpointConfig] = Field(min_length=1)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> PoolConfig:
        names = [e.name for e in self.endpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"endpoint names must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def models(self) -> list[str]:
        """Distinct model names in first-seen order."""
        return list(dict.fromkeys(e.model for e in self.endpoints))

    def for_model(self, model: str) -> list[EndpointConfig]:
        return [e for e in self.endpoints if e.model == model]

    def public_dict(self) -> dict[str, Any]:
        return {"endpoints": [e.public_dict() for e in self.endpoints],
                "retry": self.retry.model_dump(mode="json"),
                "health": self.health.model_dump(mode="json")}


def load_endpoints(path: str | Path) -> PoolConfig:
    """A pool from YAML: ``endpoints: [...]`` (+ optional ``retry:``, ``health:``), or one endpoint
    mapping."""
    path = Path(path)
    data = yamlfile.read_yaml(path, "endpoints file", hint="see recipes/endpoints/ for examples")
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping with an 'endpoints' list")
    if "endpoints" not in data:
        data = {"endpoints": [data]}
    try:
        return PoolConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = loc_text(first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']} ({exc.error_count()} error(s); "
                          "see recipes/endpoints/ for examples)") from None
