"""The Bitcoin side of the lab: seeded descriptor wallets and exact raw transactions.

Each actor is a descriptor wallet whose BIP32 master key comes from the lab
seed (``HMAC-SHA512("Bitcoin seed", seed)``, BIP32), so its addresses are the
same on every run. Wallet coin selection is randomised in Core/Knots, so the
lab never uses it: it picks inputs itself (largest first, ties by outpoint),
builds the transaction with ``createrawtransaction`` and signs it with
``signrawtransactionwithwallet``. Signatures use RFC 6979 nonces and
``createrawtransaction`` sets locktime 0, so with a fixed mock time the whole
chain is byte-reproducible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from ..errors import NodeError, NodeUnreachable

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_TPRV = bytes.fromhex("04358394")  # BIP32 testnet/regtest private version


def _b58check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def master_tprv(seed: bytes) -> str:
    """BIP32 master extended private key (regtest/testnet encoding) of ``seed``."""
    digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain_code = digest[:32], digest[32:]
    return _b58check(_TPRV + b"\0" + bytes(4) + bytes(4) + chain_code + b"\0" + key)


def sat(amount: Decimal | str | int) -> int:
    return int(Decimal(str(amount)) * 100_000_000)


def btc_text(satoshi: int) -> str:
    return f"{Decimal(satoshi) / Decimal(100_000_000):.8f}"


def vsize_estimate(n_in: int, n_out: int, op_return: bool = False) -> int:
    """Upper estimate of a P2WPKH transaction's vsize (inputs 68 vB, outputs 31 vB)."""
    return 11 + 68 * n_in + 31 * n_out + (43 if op_return else 0)


class BitcoinRpc:
    """JSON-RPC to bitcoind; amounts decode as Decimal (exact)."""

    def __init__(self, url: str) -> None:
        parsed = httpx.URL(url)
        self.base = str(parsed.copy_with(username=None, password=None)).rstrip("/")
        self.auth = (parsed.username, parsed.password) if parsed.username else None
        self._http = httpx.Client(timeout=300, auth=self.auth)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, *params: Any, wallet: str | None = None) -> Any:
        url = self.base + (f"/wallet/{wallet}" if wallet else "/")
        body = {"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}
        try:
            r = self._http.post(url, content=json.dumps(body))
        except httpx.HTTPError as exc:
            raise NodeUnreachable(f"bitcoind at {self.base}: {exc}") from exc
        if r.status_code == 401:
            raise NodeError(f"bitcoind at {self.base} refused the credentials")
        reply = json.loads(r.text, parse_float=Decimal)
        if reply.get("error"):
            raise NodeError(f"bitcoind {method}: {reply['error'].get('message', reply['error'])}")
        return reply["result"]


@dataclass(frozen=True)
class Utxo:
    txid: str
    vout: int
    address: str
    value: int  # satoshi


class Wallets:
    """The lab's regtest wallets: creation from seeds, fresh addresses, exact spends."""

    def __init__(self, rpc: BitcoinRpc, fee_rate: int = 3) -> None:
        self.rpc = rpc
        self.fee_rate = fee_rate  # sat/vB
        self.spent: set[tuple[str, int]] = set()

    def create(self, name: str, seed: bytes) -> None:
        if name in self.rpc.call("listwallets"):
            return
        self.rpc.call("createwallet", name, False, True, "", False, True)
        xprv = master_tprv(seed)
        reqs = []
        for internal in (False, True):
            desc = f"wpkh({xprv}/84h/1h/0h/{int(internal)}/*)"
            checksum = self.rpc.call("getdescriptorinfo", desc)["checksum"]
            reqs.append({"desc": f"{desc}#{checksum}", "active": True, "internal": internal,
                         "timestamp": "now", "range": [0, 2000]})
        for res in self.rpc.call("importdescriptors", reqs, wallet=name):
            if not res.get("success"):
                raise NodeError(f"importdescriptors for wallet {name}: {res}")

    def new_address(self, wallet: str) -> str:
        return str(self.rpc.call("getnewaddress", "", "bech32", wallet=wallet))

    def change_address(self, wallet: str) -> str:
        return str(self.rpc.call("getrawchangeaddress", "bech32", wallet=wallet))

    def utxos(self, wallet: str, addresses: Sequence[str] | None = None, minconf: int = 0) -> list[Utxo]:
        """Spendable coins of the wallet not yet spent by the lab, largest first."""
        args: list[Any] = [minconf, 9_999_999]
        if addresses is not None:
            args.append(list(addresses))
        rows = self.rpc.call("listunspent", *args, wallet=wallet)
        out = [Utxo(r["txid"], int(r["vout"]), r.get("address", ""), sat(r["amount"])) for r in rows
               if r.get("spendable", True) and r.get("safe", True) and (r["txid"], int(r["vout"])) not in self.spent]
        out.sort(key=lambda u: (-u.value, u.txid, u.vout))
        return out

    def fee(self, n_in: int, n_out: int, op_return: bool = False) -> int:
        return vsize_estimate(n_in, n_out, op_return) * self.fee_rate

    def spend(self, wallet: str, inputs: Sequence[Utxo], outputs: Sequence[tuple[str, int]],
              op_return: bytes | None = None) -> str:
        """Sign and broadcast exactly ``inputs`` -> ``outputs`` (+ OP_RETURN); returns the txid.

        The fee is what the inputs leave over; the caller computed it."""
        outs: list[dict[str, str]] = [{a: btc_text(v)} for a, v in outputs]
        if op_return is not None:
            outs.append({"data": op_return.hex()})
        raw = self.rpc.call("createrawtransaction", [{"txid": u.txid, "vout": u.vout} for u in inputs], outs)
        signed = self.rpc.call("signrawtransactionwithwallet", raw, wallet=wallet)
        if not signed.get("complete"):
            raise NodeError(f"wallet {wallet} could not sign: {signed.get('errors')}")
        txid = str(self.rpc.call("sendrawtransaction", signed["hex"], 0))
        self.spent.update((u.txid, u.vout) for u in inputs)
        return txid

    def pay(self, wallet: str, outputs: Sequence[tuple[str, int]], op_return: bytes | None = None,
            change: str | None = None, from_addresses: Sequence[str] | None = None, minconf: int = 0,
            ) -> tuple[str, list[Utxo], int]:
        """Pay ``outputs`` from the wallet's coins (or only those of ``from_addresses``) with
        change (to ``change``, default a fresh change address); returns (txid, inputs, fee)."""
        need = sum(v for _, v in outputs)
        chosen: list[Utxo] = []
        for u in self.utxos(wallet, from_addresses, minconf):
            chosen.append(u)
            fee = self.fee(len(chosen), len(outputs) + 1, op_return is not None)
            if sum(c.value for c in chosen) >= need + fee + 1000:
                break
        else:
            raise NodeError(f"wallet {wallet} lacks the funds for {need} sat")
        fee = self.fee(len(chosen), len(outputs) + 1, op_return is not None)
        rest = sum(c.value for c in chosen) - need - fee
        outs = list(outputs)
        if rest >= 1000:
            outs.append((change or self.change_address(wallet), rest))
        else:
            fee += rest
        return self.spend(wallet, chosen, outs, op_return), chosen, fee

    def output_index(self, txid: str, address: str) -> int:
        tx = self.rpc.call("getrawtransaction", txid, True)
        return next(int(o["n"]) for o in tx["vout"] if o["scriptPubKey"].get("address") == address)
