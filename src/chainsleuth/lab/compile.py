"""Compile the lab's Solidity contracts (``lab/contracts/*.sol``) with npm solc (solc-js).

solc-js comes from ``make nodes`` (``.nodes/anvil/node_modules/solc``). The
output is cached next to it by source hash, so a run compiles once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError
from .nodes import SOLC_RELATIVE, find_node_file

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"

# Same settings as tests/contracts/compile.js (optimizer on, paris: no PUSH0).
_COMPILE_JS = r"""
const fs = require("fs"), path = require("path"), solc = require("solc");
const sources = {};
for (const f of process.argv.slice(1)) sources[path.basename(f)] = { content: fs.readFileSync(f, "utf8") };
const input = { language: "Solidity", sources, settings: {
  optimizer: { enabled: true, runs: 200 }, evmVersion: "paris",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.methodIdentifiers"] } } } };
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join("\n")); process.exit(1); }
const result = { _solc: solc.version() };
for (const file of Object.keys(out.contracts))
  for (const [name, c] of Object.entries(out.contracts[file]))
    result[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object, methods: c.evm.methodIdentifiers };
process.stdout.write(JSON.stringify(result));
"""


@dataclass(frozen=True)
class Contract:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


@dataclass(frozen=True)
class Compiled:
    contracts: dict[str, Contract]
    solc_version: str
    source_sha256: str


def compile_lab_contracts() -> Compiled:
    sources = sorted(CONTRACTS_DIR.glob("*.sol"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    solc = find_node_file(SOLC_RELATIVE, "solc-js (npm solc)")
    modules = solc.parent.parent  # .../node_modules
    cache = modules.parent / f"lab-compiled-{digest[:16]}.json"
    if not cache.exists():
        if shutil.which("node") is None:
            raise ConfigError("node (Node.js) is needed to run solc-js: apt-get install nodejs")
        proc = subprocess.run(["node", "-e", _COMPILE_JS, *map(str, sources)], capture_output=True,
                              timeout=600, check=False, env={**os.environ, "NODE_PATH": str(modules)})
        if proc.returncode != 0:
            raise ConfigError(f"solc-js failed on the lab contracts: {proc.stderr.decode()[-2000:]}")
        cache.write_bytes(proc.stdout)
    raw = orjson.loads(cache.read_bytes())
    version = str(raw.pop("_solc", "unknown"))
    return Compiled({n: Contract(n, c["abi"], c["bytecode"]) for n, c in raw.items()}, version, digest)
