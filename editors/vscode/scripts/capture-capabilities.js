#!/usr/bin/env node
// Writes test/fixtures/client-capabilities.json: the `capabilities` that vscode-languageclient
// (the version in package-lock.json) sends in `initialize`, computed by the library's own features
// under a stand-in `vscode` module (no editor needed). Refresh it after upgrading the client:
//   node scripts/capture-capabilities.js
// The protocol test starts the real server with exactly these capabilities.
'use strict';
const Module = require('module');
const path = require('path');
const fs = require('fs');

// A `vscode` stand-in: every property is a callable, constructible object, enough for the
// client's feature constructors, which only build event emitters and read enums.
function stub(name) {
  const fn = function () {};
  return new Proxy(fn, {
    get(target, prop) {
      if (prop === Symbol.toPrimitive) return () => 1;
      if (prop === 'then') return undefined;
      if (prop === 'version') return '1.91.0';
      if (prop === 'prototype') return {};
      if (!(prop in target)) target[prop] = stub(`${name}.${String(prop)}`);
      return target[prop];
    },
    apply() { return stub(`${name}()`); },
    construct() { return stub(`new ${name}`); },
  });
}
const vscodeStub = stub('vscode');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'vscode') return 'vscode';
  return resolve.call(this, request, ...rest);
};
require.cache.vscode = { id: 'vscode', filename: 'vscode', loaded: true, exports: vscodeStub };

const { LanguageClient } = require('vscode-languageclient/node');
const client = new LanguageClient('aurora', 'Aurora', { command: 'aurora', args: ['lsp'] }, {
  documentSelector: [{ scheme: 'file' }],
});
const capabilities = client.computeClientCapabilities();
const version = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'node_modules', 'vscode-languageclient', 'package.json'), 'utf8')).version;
const out = path.join(__dirname, '..', 'test', 'fixtures', 'client-capabilities.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify({ languageClient: version, capabilities }, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), out)} (vscode-languageclient ${version})`);
