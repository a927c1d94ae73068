// Compile the .sol files given as arguments with solc-js; print {name: {abi, bytecode, methods}} as JSON.
const fs = require("fs");
const path = require("path");
const solc = require("solc");
const sources = {};
for (const f of process.argv.slice(2)) sources[path.basename(f)] = { content: fs.readFileSync(f, "utf8") };
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.methodIdentifiers"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const result = {};
for (const file of Object.keys(out.contracts)) {
  for (const [name, c] of Object.entries(out.contracts[file])) {
    result[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object, methods: c.evm.methodIdentifiers };
  }
}
process.stdout.write(JSON.stringify(result));
