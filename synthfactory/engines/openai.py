"""OpenAI-compatible endpoints (`vllm serve`, llama.cpp's server, hosted APIs) as one engine.

Several base URLs are load-balanced: each request goes to the endpoint with the fewest requests in
flight, at most `max_concurrency` per endpoint. Connection errors, timeouts, 429 and 5xx are
retried with exponential backoff (honouring Retry-After), on another endpoint when one is up; an
endpoint that fails is rested for a few seconds. A request the server refuses (4xx other than
429) becomes a row error, quarantined with its reason. A request that still fails for want of a
working server after `max_retries` is infrastructure, not data: the engine raises `EngineFailure`
and the run stops with the cause (a rerun generates those rows). The API key is read from
the environment variable the recipe names and is sent only in the Authorization header: it is in
no log, error or artifact.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from synthfactory.engines.base import ChatRequest, ChatResult, EngineBackend, EngineOptions, EngineSpec, openai_logprobs
from synthfactory.errors import EngineFailure, EngineUnavailableError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
REST_SECONDS = 5.0  # an endpoint that failed is skipped this long while another is up


@dataclass
class Endpoint:
    url: str
    slots: threading.Semaphore  # at most max_concurrency requests in flight here
    inflight: int = 0  # requests picked for this endpoint and not finished (guarded by _pick_lock)
    down_until: float = 0.0  # rested after a failure until this monotonic time


def request_body(model: str, request: ChatRequest, response_format: str = "json_schema") -> dict[str, Any]:
    """The /chat/completions body for one request (OpenAI's schema; vLLM and llama.cpp accept it)."""
    body: dict[str, Any] = {
        "model": model, "messages": [dict(m) for m in request.messages], "max_tokens": request.max_tokens,
        "temperature": request.temperature, "top_p": request.top_p, "seed": request.seed,
    }
    if request.logprobs:
        body.update(logprobs=True, top_logprobs=request.logprobs)
    if request.json_schema is not None:
        if response_format == "json_object":  # llama.cpp's server: the schema rides along as a grammar
            body["response_format"] = {"type": "json_object", "schema": request.json_schema}
        else:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True}}
    return body


def result_from_response(payload: dict[str, Any], latency_s: float) -> ChatResult:
    """A /chat/completions response to a ChatResult (text, finish reason, token counts, logprobs)."""
    choice = payload["choices"][0]
    usage = payload.get("usage") or {}
    return ChatResult(
        text=(choice.get("message") or {}).get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=latency_s,
        logprobs=openai_logprobs(choice.get("logprobs")),
    )


class OpenAIOptions(EngineOptions):
    """Any OpenAI-compatible endpoint (vllm serve, llama.cpp server, ...). One replica by default:
    it is I/O-bound and serves many batches at once."""

    base_urls: tuple[str, ...] = Field((), validate_default=True, description="endpoints, e.g. http://host:8000/v1")
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    description="NAME of the environment variable holding the API key")
    max_concurrency: int = Field(4, ge=1, le=1024, description="requests in flight per endpoint")
    timeout_s: float = Field(120.0, gt=0.0, le=3600.0, description="per request")
    max_retries: int = Field(4, ge=0, le=20, description="retries on 429/5xx/connection errors")
    response_format: Literal["json_schema", "json_object"] = Field(
        "json_schema", description="how the judge's JSON schema is sent (llama.cpp server: json_object)")

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("the openai engine needs at least one endpoint URL")
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
            if "@" in url.split("://", 1)[1].split("/", 1)[0]:  # user:password@host would end up in metadata
                raise ValueError("credentials do not belong in base_urls: put the key in an environment "
                                 "variable and name it in api_key_env")
        return tuple(url.rstrip("/") for url in value)


class OpenAIEngine(EngineBackend):
    """Every endpoint of one model; lives in one Ray actor that serves many batches at once."""

    Options = OpenAIOptions

    @classmethod
    def key(cls, spec: EngineSpec) -> str:
        return f"openai:{spec.model}:{','.join(spec.options.base_urls)}:{spec.options.response_format}"

    @classmethod
    def actor_options(cls, spec: EngineSpec, cpu_share: float) -> tuple[dict[str, Any], Any]:
        """A sliver of a CPU and a thread pool for endpoint calls: the work is on the servers."""
        return {"num_cpus": 0.1, "max_concurrency": 64}, None

    def __init__(self, spec: EngineSpec) -> None:
        self.model_name = spec.model
        self.spec = spec
        options = self.options = spec.options
        headers = {}
        if options.api_key_env:
            key = os.environ.get(options.api_key_env)
            if not key:
                raise EngineUnavailableError(
                    f"options.api_key_env: environment variable {options.api_key_env} is not set on the Ray workers")
            headers["Authorization"] = f"Bearer {key}"
        connections = options.max_concurrency * len(options.base_urls)
        self._client = httpx.Client(timeout=options.timeout_s, headers=headers,
                                    limits=httpx.Limits(max_connections=connections))
        self.endpoints = [Endpoint(url, threading.Semaphore(options.max_concurrency)) for url in options.base_urls]
        self._pick_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=options.max_concurrency * len(self.endpoints),
                                        thread_name_prefix="openai")
        started = time.perf_counter()
        problems: dict[str, str] = {}
        for attempt in range(options.max_retries + 1):  # endpoints may still be starting: the retry budget
            problems = {e.url: p for e in self.endpoints if (p := self._problem(e)) is not None}
            if len(problems) < len(self.endpoints) or attempt == options.max_retries:
                break
            time.sleep(_backoff(attempt))
        if len(problems) == len(self.endpoints):
            detail = "; ".join(f"{url}: {problem}" for url, problem in problems.items())
            raise EngineFailure(f"engine openai (model {spec.model}): no endpoint answers GET /models after "
                                f"{options.max_retries} retries ({detail})")
        self.load_seconds = time.perf_counter() - started
        log.info("openai engine: %d of %d endpoints up", len(self.endpoints) - len(problems), len(self.endpoints))

    def _problem(self, endpoint: Endpoint) -> str | None:
        """None when the endpoint answers GET /models below 500, else what went wrong."""
        try:
            response = self._client.get(f"{endpoint.url}/models", timeout=min(10.0, self.options.timeout_s))
        except httpx.HTTPError as exc:
            endpoint.down_until = time.monotonic() + REST_SECONDS
            return type(exc).__name__
        if response.status_code >= 500:
            endpoint.down_until = time.monotonic() + REST_SECONDS
            return f"HTTP {response.status_code}"
        return None

    def chat(self, requests: list[ChatRequest]) -> list[ChatResult]:
        return list(self._pool.map(self._one, requests))

    def _pick(self, avoid: Endpoint | None) -> Endpoint:
        """The least-loaded endpoint that is up (not the one that just failed, if another is up)."""
        now = time.monotonic()
        with self._pick_lock:
            up = [e for e in self.endpoints if e.down_until <= now and e is not avoid]
            candidates = up or [e for e in self.endpoints if e.down_until <= now] or self.endpoints
            chosen = min(candidates, key=lambda e: (e.inflight, e.down_until))
            chosen.inflight += 1
            return chosen

    def _one(self, request: ChatRequest) -> ChatResult:
        body = request_body(self.spec.model, request, self.options.response_format)
        started = time.perf_counter()
        last_error, endpoint, infrastructure = "", None, True
        for attempt in range(self.options.max_retries + 1):
            endpoint = self._pick(avoid=endpoint)
            retry_after = None
            try:
                with endpoint.slots:
                    response = self._client.post(f"{endpoint.url}/chat/completions", json=body)
                if response.status_code == 200:
                    return result_from_response(response.json(), time.perf_counter() - started)
                last_error = f"HTTP {response.status_code} from {endpoint.url}: {_error_text(response)}"
                if response.status_code not in RETRYABLE_STATUS:
                    infrastructure = False
                    break  # a bad request stays bad: no retry, and it is this row's problem
                retry_after = _retry_after(response)
            except (httpx.TransportError, ValueError, KeyError, IndexError, TypeError) as exc:
                # connection refused/reset, timeout, or a 200 whose body is not a chat completion
                last_error = f"{type(exc).__name__} from {endpoint.url}"
            finally:
                with self._pick_lock:
                    endpoint.inflight -= 1
            endpoint.down_until = time.monotonic() + REST_SECONDS
            if attempt < self.options.max_retries:
                time.sleep(retry_after if retry_after is not None else _backoff(attempt))
        if infrastructure:  # no server could answer it: stop the run, these rows are not data
            raise EngineFailure(f"engine openai (model {self.spec.model}): a request failed on every try "
                                f"({self.options.max_retries} retries over {len(self.endpoints)} endpoints); "
                                f"last: {last_error}")
        log.warning("request refused: %s", last_error)
        return ChatResult("", "error", 0, 0, time.perf_counter() - started, error=f"engine_error: {last_error}")

    def close(self) -> None:
        self._client.close()


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s ... at most 8 s."""
    return min(8.0, 0.25 * 2 ** attempt) * (1.0 + 0.25 * random.random())


def _error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("error", response.text)
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = response.text
    return str(detail).splitlines()[0][:200] if str(detail) else response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(30.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
