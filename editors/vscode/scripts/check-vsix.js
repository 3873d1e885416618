#!/usr/bin/env node
// Checks the packaged extension loads: unpacks aurora-lsp.vsix into a temp folder and requires its
// main module (under a stand-in `vscode` module), so a runtime dependency missing from the .vsix
// fails here rather than in the editor. Usage: node scripts/check-vsix.js [file.vsix]
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');

const vsix = path.resolve(process.argv[2] || path.join(__dirname, '..', 'aurora-lsp.vsix'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aurora-vsix-'));
try {
  execFileSync(process.env.PYTHON || 'python3', ['-m', 'zipfile', '-e', vsix, dir]);
  const ext = path.join(dir, 'extension');
  const pkg = JSON.parse(fs.readFileSync(path.join(ext, 'package.json'), 'utf8'));
  // The stand-in answers every property with a callable object; nothing is activated.
  const stub = () => new Proxy(function () {}, { get: (t, p) => (p === 'then' ? undefined : stub()), apply: () => stub(), construct: () => stub() });
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, ...rest) {
    if (request === 'vscode') return 'vscode';
    const found = resolve.call(this, request, parent, ...rest);
    if (path.isAbsolute(found) && !found.startsWith(ext)) throw new Error(`${request} resolved outside the .vsix: ${found}`);
    return found;
  };
  require.cache.vscode = { id: 'vscode', filename: 'vscode', loaded: true, exports: stub() };
  const main = require(path.join(ext, pkg.main));
  for (const fn of ['activate', 'deactivate']) {
    if (typeof main[fn] !== 'function') throw new Error(`${pkg.main} exports no ${fn}()`);
  }
  for (const m of ['vscode-languageclient/node', 'markdown-it', 'vscode-jsonrpc']) require(require.resolve(m, { paths: [ext] }));
  console.log(`${path.basename(vsix)} loads: ${pkg.main} exports activate/deactivate; runtime dependencies are inside`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
