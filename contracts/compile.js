#!/usr/bin/env node
// Compiles the contracts with the pinned solc-js and writes contracts/out/<Name>.json
// (ABI, creation bytecode, runtime bytecode, compiler settings, source hash).
//   node contracts/compile.js          write the artifacts
//   node contracts/compile.js --check  exit 1 when a committed artifact differs from a fresh build
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = __dirname;
const SOURCES = {
  JobManager: 'JobManager.sol',
  Reenterer: 'test/Reenterer.sol',
};
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'prague',
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};


function build() {
  const sources = {};
  for (const file of Object.values(SOURCES)) {
    sources[file] = { content: fs.readFileSync(path.join(ROOT, file), 'utf8') };
  }
  const output = JSON.parse(solc.compile(JSON.stringify({ language: 'Solidity', sources, settings: SETTINGS })));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
  if (errors.length) process.exit(2);
  const artifacts = {};
  for (const [name, file] of Object.entries(SOURCES)) {
    const c = output.contracts[file][name];
    artifacts[name] = JSON.stringify(
      {
        contractName: name,
        sourceName: file,
        compiler: { version: solc.version(), settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, metadata: SETTINGS.metadata } },
        source: sources[file].content,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      },
      null,
      2,
    ) + '\n';
  }
  return artifacts;
}

const check = process.argv.includes('--check');
const artifacts = build();
let stale = false;
for (const [name, text] of Object.entries(artifacts)) {
  const file = path.join(ROOT, 'out', name + '.json');
  if (check) {
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (old !== text) {
      process.stderr.write(`stale artifact: contracts/out/${name}.json (run: node contracts/compile.js)\n`);
      stale = true;
    }
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    process.stderr.write(`wrote contracts/out/${name}.json\n`);
  }
}
process.exit(stale ? 1 : 0);
