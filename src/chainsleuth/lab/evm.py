"""The EVM side of the lab: keys, ABI encoding and a small anvil client.

Keys are derived from the lab's seed (``keccak(seed, label)``) and their
addresses computed with secp256k1 here (a few hundred keys: pure Python is
fast enough). Transactions are sent with anvil's account impersonation
(``anvil_autoImpersonateAccount``), so no signing code is needed; anvil gives
impersonated transactions a fixed placeholder signature, which keeps their
hashes reproducible from run to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from Crypto.Hash import keccak

from ..errors import NodeError, NodeUnreachable

# secp256k1 (SEC 2, section 2.4.1)
_P = 2**256 - 2**32 - 977
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
      0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8)


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def _point_mul(k: int) -> tuple[int, int]:
    """k*G in Jacobian coordinates (double-and-add; keys are not secret here)."""
    x1, y1, z1 = _G[0], _G[1], 1
    rx, ry, rz = 0, 0, 0  # point at infinity (rz == 0)

    def dbl(x: int, y: int, z: int) -> tuple[int, int, int]:
        if z == 0 or y == 0:
            return 0, 0, 0
        s = 4 * x * y * y % _P
        m = 3 * x * x % _P
        nx = (m * m - 2 * s) % _P
        return nx, (m * (s - nx) - 8 * pow(y, 4, _P)) % _P, 2 * y * z % _P

    def add(ax: int, ay: int, az: int, bx: int, by: int, bz: int) -> tuple[int, int, int]:
        if az == 0:
            return bx, by, bz
        if bz == 0:
            return ax, ay, az
        u1, u2 = ax * bz * bz % _P, bx * az * az % _P
        s1, s2 = ay * pow(bz, 3, _P) % _P, by * pow(az, 3, _P) % _P
        if u1 == u2:
            return dbl(ax, ay, az) if s1 == s2 else (0, 0, 0)
        h, r = (u2 - u1) % _P, (s2 - s1) % _P
        h2, h3 = h * h % _P, pow(h, 3, _P)
        nx = (r * r - h3 - 2 * u1 * h2) % _P
        return nx, (r * (u1 * h2 - nx) - s1 * h3) % _P, h * az * bz % _P

    while k:
        if k & 1:
            rx, ry, rz = add(rx, ry, rz, x1, y1, z1)
        x1, y1, z1 = dbl(x1, y1, z1)
        k >>= 1
    zi = pow(rz, -1, _P)
    return rx * zi * zi % _P, ry * pow(zi, 3, _P) % _P


def private_key(seed: int, label: str) -> int:
    """A secp256k1 private key derived from the lab seed and a label."""
    k = int.from_bytes(keccak256(f"chainsleuth-lab/{seed}/{label}".encode()), "big") % _N
    return k or 1


def address_of(key: int) -> str:
    """The Ethereum address (lower-case hex) of a private key."""
    x, y = _point_mul(key)
    return "0x" + keccak256(x.to_bytes(32, "big") + y.to_bytes(32, "big"))[-20:].hex()


# -- ABI -----------------------------------------------------------------------------------
def selector(signature: str) -> str:
    return keccak256(signature.encode()).hex()[:8]


def _static(typ: str, value: Any) -> bytes:
    if typ == "address":
        return bytes(12) + bytes.fromhex(str(value).removeprefix("0x"))
    if typ.startswith("uint"):
        return int(value).to_bytes(32, "big")
    if typ == "bytes32":
        raw = bytes.fromhex(str(value).removeprefix("0x")) if isinstance(value, str) else bytes(value)
        return raw.rjust(32, b"\0")
    if typ == "bool":
        return int(bool(value)).to_bytes(32, "big")
    raise ValueError(f"unsupported ABI type {typ}")


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """ABI-encode static types, ``string`` and ``address[]`` (what the lab calls need)."""
    heads: list[bytes | None] = []
    tails: list[bytes] = []
    for typ, value in zip(types, values, strict=True):
        if typ == "string":
            raw = str(value).encode()
            tails.append(len(raw).to_bytes(32, "big") + raw + bytes(-len(raw) % 32))
            heads.append(None)
        elif typ.endswith("[]"):
            inner = typ[:-2]
            tails.append(len(value).to_bytes(32, "big") + b"".join(_static(inner, v) for v in value))
            heads.append(None)
        else:
            heads.append(_static(typ, value))
    offset = 32 * len(heads)
    out = b""
    ti = 0
    for h in heads:
        if h is None:
            out += offset.to_bytes(32, "big")
            offset += len(tails[ti])
            ti += 1
        else:
            out += h
    return out + b"".join(tails)


def calldata(signature: str, *args: Any) -> str:
    """``fn(type,...)`` and its arguments -> call data hex (0x...)."""
    types = [t for t in signature[signature.index("(") + 1 : -1].split(",") if t]
    return "0x" + selector(signature) + encode(types, args).hex()


# -- client --------------------------------------------------------------------------------
class RpcFailed(NodeError):
    pass


@dataclass
class Anvil:
    """JSON-RPC to an anvil node (own or given by URL)."""

    url: str

    def __post_init__(self) -> None:
        self._http = httpx.Client(timeout=120)

    def close(self) -> None:
        self._http.close()

    def rpc(self, method: str, *params: Any) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        body = orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                             for i, (m, p) in enumerate(calls)])
        try:
            resp = self._http.post(self.url, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise NodeUnreachable(f"anvil at {self.url}: {exc}") from exc
        replies = sorted(orjson.loads(resp.content), key=lambda r: r["id"])
        for r in replies:
            if r.get("error"):
                i = r["id"]
                raise RpcFailed(f"{calls[i][0]}: {r['error'].get('message', r['error'])}")
        return [r.get("result") for r in replies]

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def balances(self, addresses: Sequence[str]) -> list[int]:
        return [int(x, 16) for x in self.batch([("eth_getBalance", (a, "latest")) for a in addresses])]

    def call(self, to: str, data: str) -> bytes:
        return bytes.fromhex(str(self.rpc("eth_call", {"to": to, "data": data}, "latest"))[2:])

    def calls_uint(self, to_data: Sequence[tuple[str, str]]) -> list[int]:
        out = self.batch([("eth_call", ({"to": t, "data": d}, "latest")) for t, d in to_data])
        return [int(x, 16) for x in out]
