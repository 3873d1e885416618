// The explicit-settings extraction, and package.json's configuration against the JSON Schema.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { contributedConfiguration, explicitSettings, Inspected, leaves, restrictedKeys, SchemaNode, serverKeysFromPackage } from '../../src/settings';

const ROOT = path.join(__dirname, '..', '..', '..');
const schema: SchemaNode = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'aurora.schema.json'), 'utf8'));
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

test('only explicitly set values are sent, never defaults', () => {
  const inspected: { [k: string]: Inspected } = {
    'llm.provider': { globalValue: 'openai' },
    'llm.model': {},
    'indexing.maxFileSizeKb': { globalValue: 100, workspaceValue: 200 },
    'indexing.exclude': { globalValue: ['a/'], workspaceValue: ['b/'], workspaceFolderValue: ['c/'] },
    'budget.monthlyUsd': { workspaceValue: 0 },
    'llm.timeouts.idleMs': { globalValue: null },
  };
  const tree = explicitSettings(Object.keys(inspected), (k) => inspected[k]);
  assert.deepEqual(tree, {
    llm: { provider: 'openai' },
    indexing: { maxFileSizeKb: 200, exclude: ['c/'] },
    budget: { monthlyUsd: 0 },
  });
});

test('restricted keys come only from the user settings', () => {
  const inspected: { [k: string]: Inspected } = {
    'llm.baseUrl': { globalValue: 'http://127.0.0.1:1/v1', workspaceValue: 'http://evil.example' },
    'llm.apiKeyEnv': { workspaceFolderValue: 'STOLEN' },
  };
  const tree = explicitSettings(Object.keys(inspected), (k) => inspected[k], restrictedKeys(schema));
  assert.deepEqual(tree, { llm: { baseUrl: 'http://127.0.0.1:1/v1' } });
});

test('an empty result is an empty object (the server reads it as no settings)', () => {
  assert.deepEqual(explicitSettings(['llm.model'], () => undefined), {});
});

test('the schema marks llm.baseUrl, llm.apiKeyEnv and llm.command restricted', () => {
  assert.deepEqual(restrictedKeys(schema).sort(), ['llm.apiKeyEnv', 'llm.baseUrl', 'llm.command']);
});

test('package.json contributes exactly the schema (regenerate with npm run settings)', () => {
  assert.deepEqual(pkg.contributes.configuration, contributedConfiguration(schema));
});

test('every schema leaf is a setting with the schema default; restricted ones are machine-scoped and untrusted-restricted', () => {
  const props = pkg.contributes.configuration.properties;
  for (const { key, node } of leaves(schema)) {
    const setting = props[`aurora.${key}`];
    assert.ok(setting, `aurora.${key} is contributed`);
    assert.deepEqual(setting.default, node.default, `aurora.${key} default`);
    if (node['x-restricted']) {
      assert.equal(setting.scope, 'machine', `aurora.${key} scope`);
      assert.ok(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations.includes(`aurora.${key}`), `aurora.${key} restricted`);
    }
  }
  for (const key of ['server.path', 'server.args', 'server.env', 'trace.server']) {
    assert.ok(props[`aurora.${key}`], `client-only aurora.${key}`);
  }
  assert.equal(props['aurora.server.path'].scope, 'machine');
});

test('contributed commands are the ones the spec names', () => {
  const ids = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.deepEqual(ids, ['aurora.askSelection', 'aurora.askWorkspace', 'aurora.reindexWorkspace', 'aurora.restartServer',
    'aurora.searchWorkspace', 'aurora.setApiKey', 'aurora.showLogs', 'aurora.showStatus']);
  const titles = pkg.contributes.commands.map((c: { category: string; title: string }) => `${c.category}: ${c.title}`);
  for (const t of ['Aurora: Ask about workspace', 'Aurora: Ask about selection', 'Aurora: Search', 'Aurora: Reindex', 'Aurora: Show status']) {
    assert.ok(titles.includes(t), t);
  }
  assert.ok(!pkg.activationEvents.includes('*'));
});

test('the extension reads the server keys back from package.json, without the client-only ones', () => {
  const { keys, restricted } = serverKeysFromPackage(pkg);
  assert.deepEqual(keys, leaves(schema).map((l) => l.key));
  assert.deepEqual(restricted.sort(), restrictedKeys(schema).sort());
  assert.ok(!keys.includes('server.env'), 'server.env (may hold secrets) is never sent to the server');
});
