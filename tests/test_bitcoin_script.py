"""Script classification, asm, base58 and bech32/bech32m against published vectors and golden exports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from chainsleuth.errors import ConfigError
from chainsleuth.ingest import _blk_kernels as kern
from chainsleuth.ingest.bitcoin_script import (
    base58check_decode,
    base58check_encode,
    classify_script,
    decode_segwit_address,
    disassemble,
    hash160,
    network_params,
    nonstandard_address,
    segwit_address,
)

# BIP173 and BIP350 valid segwit addresses with their scriptPubKeys.
VALID = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
     "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6"),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    ("tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
     "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
     "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
]
# BIP350 invalid addresses (hrp, address).
INVALID = [
    ("bc", "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut"),
    ("bc", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd"),
    ("tb", "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf"),
    ("bc", "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL"),
    ("bc", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh"),
    ("tb", "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47"),
    ("bc", "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4"),
    ("bc", "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R"),
    ("bc", "bc1pw5dgrnzv"),
    ("bc", "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P"),
    ("bc", "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du"),
    ("bc", "bc1gmk9yu"),
]


@pytest.mark.parametrize(("address", "script_hex"), VALID)
def test_bip173_bip350_valid(address: str, script_hex: str) -> None:
    hrp = address.lower().split("1")[0]
    version, program = decode_segwit_address(hrp, address)
    script = bytes.fromhex(script_hex)
    assert (version, program) == ((script[0] - 0x50) if script[0] else 0, script[2:])
    assert segwit_address(hrp, version, program) == address.lower()
    # The Numba encoder gives the same text.
    buf = np.frombuffer(script, np.uint8)
    code, poff, plen, wver = kern.classify_outputs(buf, np.array([0]), np.array([len(script)]))
    slots, alen = kern.encode_addresses(buf, code, poff, plen, wver, 0, 5,
                                     np.frombuffer(hrp.encode(), np.uint8).copy())
    assert slots[: alen[0]].tobytes().decode() == address.lower()


@pytest.mark.parametrize(("hrp", "address"), INVALID)
def test_bip350_invalid(hrp: str, address: str) -> None:
    with pytest.raises(ValueError):
        decode_segwit_address(hrp, address)


def test_base58check_and_p2pk_genesis() -> None:
    pubkey = bytes.fromhex(
        "04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5f"
    )
    assert base58check_encode(0, hash160(pubkey)) == "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    assert base58check_decode("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa") == (0, hash160(pubkey))
    with pytest.raises(ValueError):
        base58check_decode("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
    assert classify_script(bytes([65]) + pubkey + b"\xac") == (
        "pubkey", 1, ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",))
    # Same key hash on testnet and regtest: version 0x6f.
    h = hash160(pubkey)
    p2pkh = b"\x76\xa9\x14" + h + b"\x88\xac"
    assert classify_script(p2pkh, "regtest")[2][0].startswith(("m", "n"))
    assert classify_script(p2pkh, "testnet") == classify_script(p2pkh, "regtest")


def test_classify_other_types() -> None:
    k1 = bytes.fromhex("02" + "11" * 32)
    k2 = bytes.fromhex("03" + "22" * 32)
    multisig = b"\x51\x21" + k1 + b"\x21" + k2 + b"\x52\xae"
    typ, req, addrs = classify_script(multisig)
    assert (typ, req) == ("multisig", 1)
    assert addrs == (base58check_encode(0, hash160(k1)), base58check_encode(0, hash160(k2)))
    assert disassemble(multisig) == f"1 {k1.hex()} {k2.hex()} 2 OP_CHECKMULTISIG"
    assert classify_script(bytes.fromhex("6a0b68656c6c6f20776f726c64")) == ("nulldata", None, ())
    assert classify_script(b"\x6a") == ("nulldata", None, ())
    odd = bytes.fromhex("6aff")  # OP_RETURN followed by a non-push: nonstandard
    assert classify_script(odd) == ("nonstandard", None, (nonstandard_address(odd),))
    assert nonstandard_address(b"").startswith("nonstandard") and len(nonstandard_address(b"")) == 51
    assert classify_script(bytes.fromhex("51024e73"))[:2] == ("anchor", 1)
    assert classify_script(bytes.fromhex("51024e73"))[2] == ("bc1pfeessrawgf",)
    assert classify_script(bytes.fromhex("0010" + "00" * 16))[0] == "nonstandard"
    assert classify_script(bytes.fromhex("5210" + "00" * 16))[0] == "witness_unknown"
    bad_key = b"\x21\x05" + b"\x00" * 32 + b"\xac"  # wrong pubkey header: not P2PK
    assert classify_script(bad_key)[0] == "nonstandard"
    with pytest.raises(ConfigError):
        network_params("moonnet")
    assert network_params("testnet3").name == "testnet"


def test_disassemble_core_format() -> None:
    assert disassemble(bytes.fromhex("0051604f")) == "0 1 16 -1"
    assert disassemble(bytes.fromhex("0281ff")) == "-32641"  # 0xff81: sign bit, magnitude 0x7f81
    assert disassemble(bytes.fromhex("03000080")) == "0"  # negative zero
    assert disassemble(bytes.fromhex("b1b2baff50c0")) == (
        "OP_CHECKLOCKTIMEVERIFY OP_CHECKSEQUENCEVERIFY OP_CHECKSIGADD OP_INVALIDOPCODE OP_RESERVED OP_UNKNOWN")
    assert disassemble(bytes.fromhex("4c05aabb")) == "[error]"
    assert disassemble(bytes.fromhex("76a90a")) == "OP_DUP OP_HASH160 [error]"


def _golden_transactions(shared_data: Path) -> list[dict]:
    root = shared_data / "bitcoin_etl_test_resources" / "test_export_blocks_job" / "bitcoin"
    txs = []
    for f in sorted(root.glob("*/expected_transactions.json")):
        for line in f.read_text().splitlines():
            if line.strip():
                txs.append(json.loads(line))
    assert txs
    return txs


@pytest.mark.data
def test_matches_bitcoin_etl_golden(shared_data: Path) -> None:
    checked = 0
    for tx in _golden_transactions(shared_data):
        for out in tx["outputs"]:
            script = bytes.fromhex(out["script_hex"])
            assert classify_script(script) == (
                out["type"], out["required_signatures"], tuple(out["addresses"]))
            assert disassemble(script) == out["script_asm"]
            buf = np.frombuffer(script, np.uint8)
            chars, _ = kern.asm_slices(buf, np.array([0]), np.array([len(script)]), False,
                                    kern.OPNAME_BUF, kern.OPNAME_OFF)
            assert chars.tobytes().decode() == out["script_asm"]
            checked += 1
        for inp in tx["inputs"]:
            script = bytes.fromhex(inp["script_hex"])
            assert disassemble(script, sighash_decode=True) == inp["script_asm"]
            buf = np.frombuffer(script, np.uint8)
            chars, _ = kern.asm_slices(buf, np.array([0]), np.array([len(script)]), True,
                                    kern.OPNAME_BUF, kern.OPNAME_OFF)
            assert chars.tobytes().decode() == inp["script_asm"]
            checked += 1
    assert checked >= 17


def test_numba_base58check_matches_python_including_leading_zeros() -> None:
    # Payloads with 0..20 leading zero bytes exercise the '1' prefix and the limb arithmetic.
    payloads = [bytes(20)] + [bytes(z) + bytes(range(1, 21 - z)) for z in range(20)] + [b"\xff" * 20]
    buf = np.frombuffer(b"".join(payloads), np.uint8)
    n = len(payloads)
    code = np.full(n, kern.T_PUBKEYHASH, np.int8)
    code[1::2] = kern.T_SCRIPTHASH
    poff = np.arange(n, dtype=np.int64) * 20
    for p2pkh, p2sh in ((0, 5), (0x6F, 0xC4), (0x30, 0x32)):
        slots, alen = kern.encode_addresses(buf, code, poff, np.full(n, 20, np.int64), np.zeros(n, np.int8),
                                            p2pkh, p2sh, np.frombuffer(b"bc", np.uint8).copy())
        got = [slots[i * kern.ADDR_WIDTH : i * kern.ADDR_WIDTH + alen[i]].tobytes().decode() for i in range(n)]
        assert got == [base58check_encode(p2sh if i % 2 else p2pkh, p) for i, p in enumerate(payloads)]
    assert got[0] == base58check_encode(0x30, bytes(20))
    slots, alen = kern.encode_addresses(buf[:20], code[:1], poff[:1], np.full(1, 20, np.int64),
                                        np.zeros(1, np.int8), 0, 5, np.frombuffer(b"bc", np.uint8).copy())
    assert slots[: alen[0]].tobytes() == b"1111111111111111111114oLvT2"  # the well-known all-zero hash160


def test_sha256_kernel_matches_hashlib() -> None:
    data = np.frombuffer(bytes(range(256)) * 20, np.uint8)
    out = np.zeros(32, np.uint8)
    for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 5000):
        kern.sha256(data, n, out)
        assert out.tobytes() == hashlib.sha256(data[:n].tobytes()).digest(), n
