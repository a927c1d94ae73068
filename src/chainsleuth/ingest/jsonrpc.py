"""A JSON-RPC 2.0 / 1.0 client for Bitcoin Core/Knots and Ethereum nodes.

Batched requests, retries with exponential backoff on transport faults, and
clear errors for the user: wrong credentials fail at once, an unreachable node
fails after the retries with the URL (password redacted) and the last cause.
Thread-safe: jobs run several batches at once from a thread pool.

Only for read-only calls (block, receipt and trace reads): a request whose
answer was lost or rate-limited is sent again as a whole, which would apply a
state-changing call (``eth_sendRawTransaction``, ``sendrawtransaction``) twice.

Rate limits: HTTP 429 and the JSON-RPC error -32005 ("limit exceeded", used by
Infura, Alchemy and geth-compatible providers) are retried with the same
bounded exponential backoff, honouring a ``Retry-After`` header in seconds (at
most ``_MAX_RETRY_AFTER``).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import orjson

from ..errors import NodeAuthError, NodeError, NodeUnreachable

RATE_LIMIT_CODE = -32005  # EIP-1474 "limit exceeded"
_MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped, not obeyed


def _rate_limited(reply: Any) -> bool:
    """Whether a decoded reply (one object or a batch) carries a rate-limit error."""
    items = reply if isinstance(reply, list) else [reply]
    return any(
        isinstance(r, dict) and isinstance(r.get("error"), dict) and r["error"].get("code") == RATE_LIMIT_CODE
        for r in items
    )


class RpcError(NodeError):
    """The node answered a call with a JSON-RPC error object."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"{method}: node error {code}: {message}")
        self.method = method
        self.code = code
        self.rpc_message = message


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class JsonRpcClient:
    """Minimal, fast JSON-RPC client (httpx + orjson)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_connections: int = 16,
        content_filter: Callable[[bytes], bytes] | None = None,
    ) -> None:
        # content_filter rewrites each reply body before JSON decoding (the Bitcoin
        # source turns BTC decimals into strings there, so no float ever holds them).
        self.content_filter = content_filter
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NodeError(f"not an http(s) RPC URL: {redact_url(url)}")
        auth = None
        if parts.username is not None:
            # urlsplit keeps percent-escapes: "p%40ss" in the URL is the password "p@ss".
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        self.url = url
        self.display_url = redact_url(url)
        self.retries = retries
        self.backoff = backoff
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(auth=auth, timeout=timeout, limits=limits)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JsonRpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _sleep(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.backoff * (2**attempt)
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: keep the exponential delay
                delay = max(delay, min(float(retry_after), _MAX_RETRY_AFTER))
        time.sleep(delay)

    def _post(self, body: bytes) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = self._http.post(
                    self.url, content=body, headers={"content-type": "application/json"}
                )
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = exc
                if attempt < self.retries:
                    time.sleep(self.backoff * (2**attempt))
                continue
            if resp.status_code in (401, 403):
                raise NodeAuthError(
                    f"the node at {self.display_url} refused the credentials "
                    f"(HTTP {resp.status_code}); check the user and password in the RPC URL"
                )
            if resp.status_code in (429, 502, 503, 504):
                last = NodeError(f"HTTP {resp.status_code}"
                                 + (" (rate limited)" if resp.status_code == 429 else ""))
                if attempt < self.retries:
                    self._sleep(attempt, resp.headers.get("retry-after"))
                continue
            content = resp.content
            if self.content_filter is not None:
                content = self.content_filter(content)
            try:
                reply = orjson.loads(content)
            except orjson.JSONDecodeError as exc:
                raise NodeError(
                    f"{self.display_url} answered HTTP {resp.status_code} with non-JSON: "
                    f"{resp.text[:200]!r}"
                ) from exc
            if attempt < self.retries and _rate_limited(reply):
                # The whole request again: safe because every call is read-only.
                last = NodeError(f"JSON-RPC error {RATE_LIMIT_CODE} (rate limited)")
                self._sleep(attempt, resp.headers.get("retry-after"))
                continue
            return reply  # after the last retry a rate-limit error surfaces as RpcError
        if isinstance(last, NodeError) and "rate limited" in str(last):
            raise NodeError(
                f"the node at {self.display_url} is still rate-limiting after {self.retries + 1} "
                "attempts (HTTP 429); use fewer workers or a smaller batch size, or another node"
            )
        raise NodeUnreachable(
            f"cannot reach the node at {self.display_url} after {self.retries + 1} attempts "
            f"({type(last).__name__}: {last}); is it running and is the URL right?"
        )

    def call(self, method: str, *params: Any) -> Any:
        """One call; raises :class:`RpcError` on a JSON-RPC error."""
        req = {"jsonrpc": "2.0", "id": self._next_id(), "method": method, "params": list(params)}
        reply = self._post(orjson.dumps(req))
        if isinstance(reply, list):  # some nodes wrap single replies
            reply = reply[0]
        if reply.get("error"):
            err = reply["error"]
            raise RpcError(method, err.get("code"), err.get("message", str(err)))
        return reply.get("result")

    def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, return_errors: bool = False
    ) -> list[Any]:
        """Many calls in one HTTP request; results in the order of ``calls``.

        With ``return_errors`` a failed call yields its :class:`RpcError` in place;
        otherwise the first error is raised.
        """
        if not calls:
            return []
        with self._lock:  # reserve a contiguous id range for this batch
            first = next(self._ids)
            self._ids = itertools.count(first + len(calls))
        ids = list(range(first, first + len(calls)))
        body = orjson.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)
            ]
        )
        reply = self._post(body)
        if isinstance(reply, dict):  # a node that rejects the whole batch answers one error
            err = reply.get("error") or {}
            raise RpcError(calls[0][0], err.get("code"), err.get("message", str(reply)))
        by_id = {r.get("id"): r for r in reply}
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            r = by_id.get(i)
            if r is None:
                raise NodeError(f"{self.display_url} gave no answer to {method} in a batch")
            if r.get("error"):
                err = r["error"]
                e = RpcError(method, err.get("code"), err.get("message", str(err)))
                if not return_errors:
                    raise e
                out.append(e)
            else:
                out.append(r.get("result"))
        return out
