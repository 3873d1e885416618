// Finding the server binary: setting, then PATH, then the bundled one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiKeyEnvName, MISSING_MESSAGE, resolveBinary } from '../../src/binary';

const exists = (set: string[]) => (p: string) => set.includes(p);

test('aurora.server.path wins when it is executable', () => {
  assert.deepEqual(resolveBinary({ configured: '/opt/aurora', pathEnv: '/usr/bin', extensionPath: '/ext', isExecutable: exists(['/opt/aurora', '/usr/bin/aurora']) }),
    { found: true, path: '/opt/aurora', source: 'setting' });
});

test('a configured path that is not executable is reported, not skipped', () => {
  const r = resolveBinary({ configured: '/nope', pathEnv: '/usr/bin', extensionPath: '/ext', isExecutable: exists(['/usr/bin/aurora']) });
  assert.equal(r.found, false);
  assert.match(!r.found ? r.message : '', /aurora\.server\.path is \/nope/);
});

test('then the first aurora on PATH, then the bundled binary', () => {
  assert.deepEqual(resolveBinary({ pathEnv: '/a:/b', extensionPath: '/ext', isExecutable: exists(['/b/aurora', '/ext/bin/aurora']) }),
    { found: true, path: '/b/aurora', source: 'path' });
  assert.deepEqual(resolveBinary({ pathEnv: '/a', extensionPath: '/ext', isExecutable: exists(['/ext/bin/aurora']) }),
    { found: true, path: '/ext/bin/aurora', source: 'bundled' });
});

test('nothing found: the message says what to do', () => {
  assert.deepEqual(resolveBinary({ pathEnv: '/a', extensionPath: '/ext', isExecutable: exists([]) }), { found: false, message: MISSING_MESSAGE });
  assert.match(MISSING_MESSAGE, /Install it or set aurora\.server\.path/);
});

test('the API key variable: llm.apiKeyEnv, else the provider default', () => {
  assert.equal(apiKeyEnvName('openai', 'MY_KEY'), 'MY_KEY');
  assert.equal(apiKeyEnvName('anthropic', ''), 'ANTHROPIC_API_KEY');
  assert.equal(apiKeyEnvName('openai', undefined), 'OPENAI_API_KEY');
  assert.equal(apiKeyEnvName('ollama', undefined), undefined);
});
