"""The router's ASGI application: routes, auth, admission, forwarding, accounting.

A plain ASGI callable with a dict of routes, no middleware: every request
pays only for what it uses. A generation request is read (size limit),
parsed (400 on bad JSON), admitted (local replica, hosted endpoint, a wait
for a local slot, or 429), forwarded, and judged for useful tokens when it
ends, however it ends. A client that goes away cancels the request: a small
watcher on the ASGI `receive` channel cancels the handler, which closes the
upstream response (the engine then frees its slot). Errors of the router's
own tree become OpenAI error objects here, at the boundary; anything
else (a bug) becomes a 500 JSON answer with no detail, logged here.

The OpenAI surface, as the official clients expect it: a request naming a
model other than the deployment's (or one of its aliases) is a 404
`model_not_found`; answers name the deployment's model whichever backend
served them (`forward` renames the hosted provider's); `/v1/models/{id}`;
`Allow` on a 405; every answer carries an `x-request-id` (the client's
when sane, else a new one), which the engine pod is sent too.

Clients need a bearer token unless the router runs open
(`allow_anonymous`); `/metrics` (spend and caps) is served on its own port
(`metrics_app`), on the API port only when asked. Idempotency keys are
scoped to the client that sent them (`dedupe`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from weir.router.accounting import Outcome, Verdict, judge
from weir.router.backends import BackendSet
from weir.router.breaker import CircuitBreaker
from weir.router.budget import Reservation
from weir.router.config import RouterPolicy, RouterSettings, check_hosted_transport
from weir.router.cost import MAX_CHOICES, choices, safe_hosted_input_bound
from weir.router.dedupe import MAX_KEY_BYTES, DuplicateKeys
from weir.router.errors import (
    ClientRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NoBackendError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    RouterError,
    UnauthorizedError,
    UpstreamError,
    UpstreamStatusError,
)
from weir.router.forward import Attempt, Exchange, forward
from weir.router.metrics import RouterMetrics
from weir.router.request import ClientRequest, parse_request, read_body
from weir.router.spill import Request, Spill, SpillDecision
from weir.router.sse import served_model
from weir.router.upstream import Headers, Upstream
from weir.serving import error_json, model_object, request_id

log = logging.getLogger("weir.router")

_JSON = [(b"content-type", b"application/json")]
_LOCAL_HEADERS: Headers = [(b"content-type", b"application/json")]
_HOSTED_HEADERS: Headers = [*_LOCAL_HEADERS, (b"accept-encoding", b"identity")]
_GENERATE = {"/v1/chat/completions": True, "/v1/completions": False}
_CLOSE = [(b"connection", b"close")]
_MODEL_PREFIX = "/v1/models/"
_INTERNAL = error_json("internal error", "internal_error", "internal_error")


async def _answer(send: Send, status: int, body: bytes, headers: Headers) -> None:
    head = [*_JSON, *headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Router:
    """One router: its replicas, policy, hosted endpoint, metrics and ASGI entry point."""

    def __init__(
        self,
        settings: RouterSettings,
        policy: RouterPolicy,
        upstream: Upstream,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.upstream = upstream
        self.clock = clock
        self.metrics = RouterMetrics()
        self.backends = BackendSet()
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_open_s)
        self.spill = Spill(
            self.backends,
            self.metrics,
            policy,
            breaker=breaker,
            clock=clock,
            share_window_s=settings.share_window_s,
            budget_window_s=settings.budget_window_s,
        )
        self.dupes = DuplicateKeys(settings.dedupe_window_s, settings.max_dedupe_keys)
        check_hosted_transport(policy, settings.allow_insecure_hosted, "policy")
        self.backends.mark_draining(frozenset(policy.draining_pods))
        self.policy_loaded = True
        names = [settings.model_name, *sorted(settings.model_aliases - {settings.model_name})]
        self._model_bodies = {name: json.dumps(model_object(name)).encode() for name in names}
        listed = [model_object(name) for name in names]
        self._models = json.dumps({"object": "list", "data": listed}).encode()
        self._served = served_model(settings.model_name)
        self._hosted_auth: Headers = []
        if settings.hosted_key is not None:
            self.set_hosted_key(settings.hosted_key)
        self._tokens = {b"Bearer " + t.encode() for t in settings.client_tokens}

    def set_hosted_key(self, key: str) -> None:
        """A new hosted API key (rotated Secret); never logged."""
        self._hosted_auth = [(b"authorization", b"Bearer " + key.encode())]

    def hosted_key_bytes(self) -> bytes:
        """The current key's bytes (for change detection only)."""
        return self._hosted_auth[0][1][7:] if self._hosted_auth else b""

    @property
    def policy(self) -> RouterPolicy:
        return self.spill.policy

    def set_policy(self, policy: RouterPolicy) -> None:
        """A new plan; ConfigError (and the old one stays) if its hosted URL is not allowed."""
        check_hosted_transport(policy, self.settings.allow_insecure_hosted, "policy")
        self.spill.set_policy(policy)
        self.backends.mark_draining(frozenset(policy.draining_pods))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = [(b"x-request-id", request_id(given))]
        try:
            if path in _GENERATE:
                if method != "POST":
                    raise MethodNotAllowedError(f"{path} accepts POST only", "POST")
                await self._generate(scope, receive, send, rid, chat=_GENERATE[path])
            elif method != "GET":
                if path not in _GETS and not path.startswith(_MODEL_PREFIX):
                    raise NotFoundError(f"{method} {path} is not served")
                raise MethodNotAllowedError(f"{method} {path} is not served", "GET")
            elif path == "/v1/models":
                self._authorize(scope)
                await _answer(send, 200, self._models, rid)
            elif path.startswith(_MODEL_PREFIX):
                self._authorize(scope)
                name = path[len(_MODEL_PREFIX) :]
                body = self._model_bodies.get(name)
                if body is None:
                    raise ModelNotFoundError(name)
                await _answer(send, 200, body, rid)
            elif path == "/healthz":
                await _answer(send, 200, b'{"status":"ok"}', rid)
            elif path == "/readyz":
                await self._ready(send, rid)
            elif path == "/metrics" and self.settings.metrics_on_api_port:
                await self.serve_metrics(send)
            else:
                raise NotFoundError(f"no route {path}")
        except RouterError as exc:
            if not isinstance(exc, UpstreamError):  # upstream failures are counted per attempt
                self.metrics.refused(exc.outcome)
            headers = [(k.encode(), v.encode()) for k, v in exc.headers().items()] + rid
            if isinstance(exc, RequestTimeoutError | PayloadTooLargeError):
                headers += _CLOSE  # the rest of the body is not read: no next request
            await _answer(send, exc.status, exc.body(), headers)
        except Exception:
            # anything else is a bug in the router: the client gets an OpenAI-style 500
            # (logged with its traceback, never sent), not a torn connection or a text page
            log.exception("unexpected error serving %s %s", method, path[:200])
            self.metrics.refused("error")
            with contextlib.suppress(RuntimeError):  # the head may be out already
                await _answer(send, 500, _INTERNAL, rid)

    def _authorize(self, scope: Scope) -> bytes:
        """The client's dedupe scope (its token, or its address when open), or 401."""
        for name, value in scope["headers"]:
            if name == b"authorization" and value in self._tokens:
                return bytes(value)
        if self.settings.allow_anonymous:
            client = scope.get("client")
            return client[0].encode() if client else b"-"
        raise UnauthorizedError("missing or unknown bearer token (Authorization: Bearer ...)")

    async def _ready(self, send: Send, rid: Headers) -> None:
        routable, _ = self.backends.counts()
        hosted = self.policy.hosted_enabled and self.policy.hosted is not None
        if self.policy_loaded and (routable or hosted):
            await _answer(send, 200, b'{"status":"ready"}', rid)
        else:
            body = b'{"status":"no replica ready and no hosted endpoint"}'
            await _answer(send, 503, body, rid)

    async def serve_metrics(self, send: Send) -> None:
        """The Prometheus text (the metrics port's one route)."""
        routable, draining = self.backends.counts()
        m = self.metrics
        m.replicas.labels("ready").set(routable)
        m.replicas.labels("draining").set(draining)
        m.waiting.set(self.spill.waiting)
        state = self.spill.breaker.state(self.clock())
        m.breaker.set({"closed": 0.0, "half_open": 0.5, "open": 1.0}[state])
        body = m.render()
        head = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        head.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _generate(
        self, scope: Scope, receive: Receive, send: Send, rid: Headers, *, chat: bool
    ) -> None:
        client = self._authorize(scope)
        key: bytes | None = None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name in (b"idempotency-key", b"x-request-id") and key is None:
                key = value
        if key is not None and len(key) > MAX_KEY_BYTES:
            raise ClientRequestError(f"Idempotency-Key / X-Request-Id over {MAX_KEY_BYTES} bytes")
        settings = self.settings
        body = await read_body(
            receive, length, settings.max_body_bytes, settings.limits.body_timeout_s
        )
        request = parse_request(body, chat=chat)
        if request.model is not None and request.model not in self._model_bodies:
            raise ModelNotFoundError(request.model)
        started = self.clock()
        duplicate = self.dupes.seen_before(client, key, started)
        if duplicate:
            self.metrics.duplicates.inc()
        task = asyncio.current_task()
        assert task is not None
        exchange = Exchange()

        def disconnected(_: object) -> None:
            if not exchange.response_done:
                task.cancel("client disconnected")

        watcher = asyncio.ensure_future(receive())
        watcher.add_done_callback(disconnected)
        try:
            await self._serve(request, send, exchange, started, duplicate, rid)
        except RouterError as exc:
            if not exchange.response_started:
                raise
            # Mid-stream failure: the head is out, so end the stream with an error event.
            event = b"data: " + exc.body() + b"\n\n"
            exchange.response_done = True
            await send({"type": "http.response.body", "body": event, "more_body": False})
        except asyncio.CancelledError:
            if not watcher.done() or task.cancelling() != 1:
                raise
            task.uncancel()  # the client left: nothing to answer
        finally:
            watcher.remove_done_callback(disconnected)
            watcher.cancel()

    async def _serve(
        self,
        request: ClientRequest,
        send: Send,
        exchange: Exchange,
        started: float,
        duplicate: bool,
        rid: Headers,
    ) -> None:
        """Admit and forward; retry once elsewhere if an upstream fails before its first token."""
        shape = self._shape(request)
        exclude: str | None = None
        allow_hosted = True
        failure: UpstreamError | None = None
        for _ in range(2):
            try:
                # after a hosted failure the request may queue for a local slot, if
                # there are local replicas (local queueing while the hosted endpoint
                # is down); after a local one it goes where admission sends it at once
                may_wait = failure is None or (not allow_hosted and bool(self.backends.by_id))
                decision = await self.spill.admit(
                    shape, exclude=exclude, allow_hosted=allow_hosted, may_wait=may_wait
                )
            except OverloadedError:
                if may_wait or failure is None:  # (implied by may_wait; says so to mypy)
                    raise  # it queued for a local slot and none came: 429, retry later
                raise failure from None  # nowhere to retry: the first failure is the answer
            try:
                await self._attempt(decision, request, send, exchange, started, duplicate, rid)
                return
            except UpstreamError as exc:
                if not exc.before_first_token or failure is not None or _client_error(exc):
                    raise
                failure = exc
                log.info("%s failed before its first token, retrying: %s", decision.route, exc)
                if decision.route == "local" and decision.backend is not None:
                    exclude = decision.backend.id
                else:
                    allow_hosted = False
        raise NoBackendError("no upstream could serve the request", 1.0)  # pragma: no cover

    async def _attempt(
        self,
        decision: SpillDecision,
        request: ClientRequest,
        send: Send,
        exchange: Exchange,
        started: float,
        duplicate: bool,
        rid: Headers,
    ) -> None:
        """One upstream attempt, accounted for whatever happens."""
        hosted = decision.route == "hosted"
        backend_label = "hosted" if hosted else "local"
        spill, policy = self.spill, self.policy
        if hosted:
            assert policy.hosted is not None
            url = policy.hosted.base_url.rstrip("/") + (
                "/chat/completions" if request.chat else "/completions"
            )
            body = request.hosted_body(
                policy.hosted.model, spill.hosted_max_tokens(Request(0, 0, request.max_tokens))
            )
            headers = [*_HOSTED_HEADERS, *self._hosted_auth]
        else:
            assert decision.backend is not None
            self.backends.acquire(decision.backend)
            url = decision.backend.url + (
                "/v1/chat/completions" if request.chat else "/v1/completions"
            )
            body, headers = request.local_body(self.settings.model_name), _LOCAL_HEADERS + rid
        per_token = self.settings.itl_rule == "per_token"
        attempt = Attempt(
            started_at=started,
            exchange=exchange,
            itl_target_s=self.policy.slo.itl_seconds if per_token else None,
        )
        attempt.extra_headers += ((b"x-weir-backend", backend_label.encode()), *rid)
        outcome: Outcome = "failed"
        self.metrics.started(backend_label)
        try:
            await forward(
                self.upstream,
                url,
                body,
                headers,
                send,
                stream=request.stream,
                strip_usage=request.stream and not request.wants_usage,
                first_token_timeout_s=self.settings.first_token_timeout_s,
                clock=self.clock,
                attempt=attempt,
                max_retry_after_s=self.settings.max_retry_after_s,
                model=self._served,
            )
            outcome = "completed"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except UpstreamError as exc:
            outcome = "timeout" if exc.status == 504 else "failed"
            if hosted:
                self._hosted_failed(exc)
            raise
        finally:
            self._account(decision, request, attempt, outcome, duplicate, backend_label)
        if hosted:
            spill.breaker.success()

    def _shape(self, request: ClientRequest) -> Request:
        """What admission needs; the hosted price bound is computed only if hosted is tried."""
        policy = self.policy
        if not (policy.hosted_enabled and policy.hosted is not None):
            return Request(request.prefill_estimate, request.prompt_bound, request.max_tokens)
        n = choices(request.parsed)
        if n > MAX_CHOICES:
            raise ClientRequestError(f"'n' and 'best_of' must be at most {MAX_CHOICES}", param="n")
        return Request(
            request.prefill_estimate,
            request.prompt_bound,
            request.max_tokens,
            n,
            bound_fn=functools.partial(safe_hosted_input_bound, request.parsed, chat=request.chat),
        )

    def _hosted_failed(self, exc: UpstreamError) -> None:
        if isinstance(exc, UpstreamStatusError) and exc.status == 429:
            self.spill.throttle(exc.retry_after_s or 1.0)
        elif not _client_error(exc):
            self.spill.breaker.failure(self.clock())

    def _account(
        self,
        decision: SpillDecision,
        request: ClientRequest,
        attempt: Attempt,
        outcome: Outcome,
        duplicate: bool,
        backend_label: str,
    ) -> None:
        now = self.clock()
        if decision.backend is not None:
            self.backends.release(decision.backend)
            if attempt.first_token_at is not None:
                decision.backend.note_ttft(attempt.first_token_at - attempt.started_at, now)
        slo = self.policy.slo
        verdict = judge(
            outcome=outcome,
            duplicate=duplicate,
            started_at=attempt.started_at,
            first_token_at=attempt.first_token_at,
            last_token_at=attempt.last_token_at,
            usage=attempt.usage,
            counted_tokens=attempt.counted_tokens,
            prompt_bound=request.prompt_bound if attempt.response_started else 0,
            ttft_target_s=slo.ttft_seconds,
            streamed=request.stream,
            itl_target_s=slo.itl_seconds,
            late_tokens=attempt.late_tokens if request.stream else None,
        )
        self.metrics.finished(backend_label, verdict)
        if decision.reservation is not None:
            self._charge(decision.reservation, verdict, attempt)

    def _charge(self, reservation: Reservation, verdict: Verdict, attempt: Attempt) -> None:
        """Settle a hosted reservation at what the request cost, or may have cost.

        With the provider's usage, its price (an overrun is charged in full);
        after an error status, nothing; otherwise (a cut stream, a timeout,
        a cancel: the provider may have billed) the whole reservation.
        """
        reserved = reservation.dollars
        if attempt.usage is not None and attempt.usage.reported:
            price = self.spill.hosted_price(
                verdict.input_tokens, verdict.cached_tokens, verdict.output_tokens
            )
        else:
            price = 0.0 if attempt.refused else reserved
        self.spill.budget.settle(reservation, price)
        if price > reserved:
            log.warning("hosted request cost $%.6f, over its reservation $%.6f", price, reserved)
        self.metrics.spend.inc(price)


_GETS = frozenset(("/v1/models", "/healthz", "/readyz", "/metrics"))


def _client_error(exc: UpstreamError) -> bool:
    """A 4xx other than 429: the request is wrong, another upstream would say the same."""
    return isinstance(exc, UpstreamStatusError) and 400 <= exc.status < 500 and exc.status != 429
