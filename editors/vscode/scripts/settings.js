#!/usr/bin/env node
// Generates package.json's `contributes.configuration` and the untrusted-workspace restricted
// settings from the server's JSON Schema (--write), or checks they are up to date (--check).
// Schema source, first found: $AURORA_SCHEMA, <repo>/schema/aurora.schema.json (committed by the
// server), editors/vscode/schema/aurora.schema.json. Needs `tsc -p .` first (uses out/src/settings.js).
'use strict';
const fs = require('fs');
const path = require('path');
const { contributedConfiguration, restrictedKeys, CLIENT_ONLY } = require('../out/src/settings.js');

const root = path.join(__dirname, '..');
function schemaPath() {
  const candidates = [process.env.AURORA_SCHEMA, path.join(root, '..', '..', 'schema', 'aurora.schema.json'),
    path.join(root, 'schema', 'aurora.schema.json')];
  return candidates.find((p) => p && fs.existsSync(p));
}

function expected(pkg, schema) {
  const out = JSON.parse(JSON.stringify(pkg));
  out.contributes.configuration = contributedConfiguration(schema);
  const machine = Object.entries(CLIENT_ONLY).filter(([, n]) => n.scope === 'machine').map(([k]) => `aurora.${k}`);
  out.capabilities.untrustedWorkspaces.restrictedConfigurations = [...machine, ...restrictedKeys(schema).map((k) => `aurora.${k}`)];
  return out;
}

const source = schemaPath();
const schema = JSON.parse(fs.readFileSync(source, 'utf8'));
const pkgFile = path.join(root, 'package.json');
const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
const want = expected(pkg, schema);
const rel = path.relative(process.cwd(), source);
if (process.argv.includes('--write')) {
  fs.writeFileSync(pkgFile, JSON.stringify(want, null, 2) + '\n');
  console.log(`package.json settings generated from ${rel}`);
} else if (JSON.stringify(want) !== JSON.stringify(pkg)) {
  console.error(`package.json's settings differ from ${rel}; run \`npm run settings\` and commit package.json`);
  process.exit(1);
} else {
  console.log(`package.json settings match ${rel}`);
}
