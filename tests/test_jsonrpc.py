"""JsonRpcClient against tiny real HTTP servers on 127.0.0.1 (stdlib http.server).

A scripted server stands in for a rate-limiting provider: no test node answers
429 or -32005 on demand.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chainsleuth.errors import NodeAuthError, NodeError
from chainsleuth.ingest.jsonrpc import JsonRpcClient, RpcError

# One reply per request: (HTTP status, JSON body or None, headers).
Reply = tuple[int, Any, dict[str, str]]


class _Server:
    def __init__(self, script: Callable[[dict[str, Any] | list[Any], dict[str, str]], Reply]) -> None:
        self.requests: list[tuple[Any, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((body, headers))
                status, payload, extra = script(body, headers)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _ok(body: Any, result: Any = "0x10") -> Any:
    if isinstance(body, list):
        return [{"jsonrpc": "2.0", "id": r["id"], "result": result} for r in body]
    return {"jsonrpc": "2.0", "id": body["id"], "result": result}


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    servers: list[_Server] = []

    def start(script: Callable[..., Reply]) -> _Server:
        s = _Server(script).__enter__()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.__exit__()


def test_http_429_is_retried_then_succeeds(serve: Callable[..., _Server]) -> None:
    def script(body: Any, headers: dict[str, str]) -> Reply:
        if len(srv.requests) <= 2:
            return 429, {"error": "too many requests"}, {"Retry-After": "0"}
        return 200, _ok(body), {}

    srv = serve(script)
    with JsonRpcClient(f"http://127.0.0.1:{srv.port}/", retries=3, backoff=0.01) as client:
        assert client.call("eth_blockNumber") == "0x10"
    assert len(srv.requests) == 3


def test_rate_limit_error_in_a_batch_retries_the_batch(serve: Callable[..., _Server]) -> None:
    def script(body: Any, headers: dict[str, str]) -> Reply:
        if len(srv.requests) <= 2:
            # A provider that answers one item of the batch with -32005.
            items = _ok(body)
            items[1] = {"jsonrpc": "2.0", "id": body[1]["id"],
                        "error": {"code": -32005, "message": "daily request count exceeded"}}
            return 200, items, {}
        return 200, _ok(body, "0x1"), {}

    srv = serve(script)
    with JsonRpcClient(f"http://127.0.0.1:{srv.port}/", retries=3, backoff=0.01) as client:
        assert client.batch([("eth_getBlockByNumber", ["0x1", False])] * 3) == ["0x1"] * 3
    assert len(srv.requests) == 3


def test_rate_limiting_is_bounded(serve: Callable[..., _Server]) -> None:
    srv = serve(lambda body, headers: (429, None, {}))
    with (JsonRpcClient(f"http://127.0.0.1:{srv.port}/", retries=2, backoff=0.01) as client,
          pytest.raises(NodeError, match="rate-limiting after 3 attempts")):
        client.call("eth_blockNumber")
    assert len(srv.requests) == 3

    def always_32005(body: Any, headers: dict[str, str]) -> Reply:
        return 200, {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32005, "message": "limit"}}, {}

    srv = serve(always_32005)
    with (JsonRpcClient(f"http://127.0.0.1:{srv.port}/", retries=2, backoff=0.01) as client,
          pytest.raises(RpcError) as err):
        client.call("eth_blockNumber")
    assert err.value.code == -32005 and len(srv.requests) == 3


def test_percent_encoded_credentials_are_decoded(serve: Callable[..., _Server]) -> None:
    def script(body: Any, headers: dict[str, str]) -> Reply:
        want = "Basic " + base64.b64encode(b"us@r:p@ss:w/rd").decode()
        if headers.get("authorization") != want:
            return 401, None, {}
        return 200, _ok(body), {}

    srv = serve(script)
    url = f"http://us%40r:p%40ss%3Aw%2Frd@127.0.0.1:{srv.port}/"
    with JsonRpcClient(url, retries=0) as client:
        assert client.call("eth_blockNumber") == "0x10"
        assert "p%40ss" not in client.display_url and "***" not in client.url
    with (JsonRpcClient(f"http://us%40r:wrong@127.0.0.1:{srv.port}/", retries=0) as client,
          pytest.raises(NodeAuthError)):
        client.call("eth_blockNumber")
