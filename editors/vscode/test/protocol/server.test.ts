// The real `aurora lsp`, driven through vscode-jsonrpc exactly as the extension's client drives it:
// VS Code's client capabilities (test/fixtures/client-capabilities.json, computed by the
// vscode-languageclient in package-lock.json) plus the extension's own `experimental.aurora`,
// initializationOptions built by the extension's settings code, and the extension's request module
// (src/requests.ts) for status, search and ask. A fake OpenAI-compatible provider on loopback
// (editors/testing/fake_llm.py) plays the model.
//
// Needs AURORA_BIN (the binary to test); python3 runs the fake provider.

import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  CancellationTokenSource, createMessageConnection, MessageConnection, StreamMessageReader, StreamMessageWriter,
} from 'vscode-jsonrpc/node';
import { fillAuroraCapabilities } from '../../src/capabilities';
import { DidChangeStatusParams, ErrorCodes } from '../../src/protocol';
import * as requests from '../../src/requests';
import { statusBarLook } from '../../src/render';
import { explicitSettings, leaves, SchemaNode } from '../../src/settings';

const VSCODE = path.join(__dirname, '..', '..', '..');
const EDITORS = path.join(VSCODE, '..');
const FIXTURE = path.join(EDITORS, 'testing', 'fixture');
const FAKE_LLM = path.join(EDITORS, 'testing', 'fake_llm.py');
// Kept in step with editors/testing/fake_llm.py.
const ANSWER_SENTENCE = 'The fake model found the answer in the indexed code.';
const DOCSTRING = 'Documented by the fake model.';
/** Generous: the machine is shared; nothing asserts a duration. */
const WAIT_MS = 60_000;
const TEST_TIMEOUT = { timeout: 120_000 };

const capabilitiesFixture = JSON.parse(fs.readFileSync(path.join(VSCODE, 'test', 'fixtures', 'client-capabilities.json'), 'utf8'));
const schema: SchemaNode = JSON.parse(fs.readFileSync(path.join(VSCODE, 'schema', 'aurora.schema.json'), 'utf8'));

function auroraBinary(): string {
  const bin = process.env.AURORA_BIN;
  if (!bin || !fs.existsSync(bin)) {
    throw new Error(`set AURORA_BIN to the aurora binary to test (got ${bin ?? 'nothing'}); e.g. AURORA_BIN=$CARGO_TARGET_DIR/debug/aurora npm test`);
  }
  return path.resolve(bin);
}

async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, log: () => string, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The fake provider: started once, asked for what it received. */
class FakeLlm {
  private constructor(readonly proc: ChildProcess, readonly port: number) {}

  static async start(): Promise<FakeLlm> {
    const proc = spawn(process.env.PYTHON ?? 'python3', [FAKE_LLM, '--exit-on-stdin-eof'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      proc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /PORT (\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      proc.on('exit', (code) => reject(new Error(`fake_llm.py exited ${code}`)));
      setTimeout(() => reject(new Error('fake_llm.py printed no port in 20 s')), 20_000).unref();
    });
    return new FakeLlm(proc, port);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  async requests(): Promise<{ body: any; completed: boolean; disconnected: boolean }[]> {
    const r = await fetch(`http://127.0.0.1:${this.port}/_requests`);
    return (await r.json()) as { body: any; completed: boolean; disconnected: boolean }[];
  }

  async control(body: object): Promise<void> {
    await fetch(`http://127.0.0.1:${this.port}/_control`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  }

  stop(): void {
    this.proc.kill();
  }
}

/** One `aurora lsp` process and the editor side of the conversation. */
class Session {
  readonly notifications: { method: string; params: any }[] = [];
  readonly progress: { token: string | number; value: any }[] = [];
  readonly applyEdits: any[] = [];
  readonly statuses: DidChangeStatusParams[] = [];
  stderr = '';
  initializeResult: any;

  private constructor(readonly proc: ChildProcess, readonly conn: MessageConnection, readonly settings: object) {}

  static async start(root: string | undefined, initializationOptions: object, env: NodeJS.ProcessEnv = {}): Promise<Session> {
    const configHome = fs.mkdtempSync(path.join(os.tmpdir(), 'aurora-vscode-config-'));
    const proc = spawn(auroraBinary(), ['lsp'], {
      env: { ...process.env, XDG_CONFIG_HOME: configHome, AURORA_LOG: 'aurora=debug', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
    const s = new Session(proc, conn, initializationOptions);
    proc.stderr!.on('data', (d: Buffer) => (s.stderr += d.toString()));
    // What VS Code's client answers to the server's requests.
    conn.onRequest('window/workDoneProgress/create', () => null);
    conn.onRequest('client/registerCapability', () => null);
    conn.onRequest('client/unregisterCapability', () => null);
    conn.onRequest('workspace/configuration', (p: { items: { section?: string }[] }) =>
      p.items.map((i) => (i.section === 'aurora' ? initializationOptions : null)));
    conn.onRequest('workspace/applyEdit', (p: any) => {
      s.applyEdits.push(p);
      return { applied: true };
    });
    conn.onRequest('window/showDocument', () => ({ success: true }));
    conn.onRequest('window/showMessageRequest', () => null);
    conn.onNotification((method: string, params: any) => {
      s.notifications.push({ method, params });
    });
    conn.onUnhandledProgress((p) => s.progress.push(p));
    requests.onStatus(conn, (p) => s.statuses.push(p));
    conn.listen();
    const capabilities = JSON.parse(JSON.stringify(capabilitiesFixture.capabilities));
    fillAuroraCapabilities(capabilities);
    const folderUri = root ? pathToFileURL(root).href : null;
    s.initializeResult = await conn.sendRequest('initialize', {
      processId: process.pid,
      clientInfo: { name: 'Visual Studio Code', version: '1.91.0' },
      locale: 'en',
      rootPath: root ?? null,
      rootUri: folderUri,
      capabilities,
      initializationOptions,
      trace: 'off',
      workspaceFolders: root ? [{ uri: folderUri, name: path.basename(root) }] : null,
    });
    await conn.sendNotification('initialized', {});
    return s;
  }

  log(): string {
    const lines = this.stderr.trimEnd().split('\n');
    return `--- aurora lsp stderr (last 60 lines) ---\n${lines.slice(-60).join('\n')}`;
  }

  async stop(): Promise<void> {
    try {
      await Promise.race([this.conn.sendRequest('shutdown'), new Promise((r) => setTimeout(r, 10_000).unref())]);
      await this.conn.sendNotification('exit');
    } catch {
      // the process may already be gone
    }
    await Promise.race([new Promise((r) => this.proc.once('exit', r)), new Promise((r) => setTimeout(r, 5_000).unref())]);
    this.conn.dispose();
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

let fake: FakeLlm;
let session: Session;
let root: string;

before(async () => {
  fake = await FakeLlm.start();
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'aurora-vscode-ws-')));
  fs.cpSync(FIXTURE, root, { recursive: true });
  // What the extension sends: only the settings the user set (here, in their user settings).
  const user: { [k: string]: unknown } = {
    'llm.provider': 'openai', 'llm.model': 'fake', 'llm.baseUrl': fake.baseUrl, 'llm.apiKeyEnv': 'AURORA_TEST_KEY',
  };
  const settings = explicitSettings(leaves(schema).map((l) => l.key), (k) => (k in user ? { globalValue: user[k] } : {}));
  session = await Session.start(root, settings, { AURORA_TEST_KEY: 'fake-key-for-tests' });
});

after(async () => {
  await session?.stop();
  fake?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

function fileUri(rel: string): string {
  return pathToFileURL(path.join(root, rel)).href;
}

test('initialize: Aurora protocol 1, utf-16 for VS Code, incremental sync', TEST_TIMEOUT, () => {
  const r = session.initializeResult;
  assert.equal(r.serverInfo?.name, 'aurora');
  assert.equal(r.capabilities.experimental?.aurora?.protocolVersion, 1);
  assert.equal(r.capabilities.positionEncoding ?? 'utf-16', 'utf-16');
  assert.equal(r.capabilities.textDocumentSync?.change, 2);
  assert.equal(r.capabilities.workspaceSymbolProvider, true);
});

test('initialize advertises the spec\'s custom methods, code actions and commands (§1.1)', TEST_TIMEOUT, () => {
  const c = session.initializeResult.capabilities;
  assert.deepEqual(c.experimental?.aurora, {
    protocolVersion: 1,
    requests: ['aurora/ask', 'aurora/search', 'aurora/status', 'aurora/conversations'],
    notifications: ['aurora/didChangeStatus'],
    partialResults: ['aurora/ask'],
  });
  assert.deepEqual(c.codeActionProvider, {
    codeActionKinds: ['aurora.explain', 'refactor.rewrite.aurora', 'source.aurora.document', 'source.aurora.tests'],
    resolveProvider: false,
  });
  assert.deepEqual(c.executeCommandProvider?.commands,
    ['aurora.ask', 'aurora.explain', 'aurora.refactor', 'aurora.document', 'aurora.tests', 'aurora.reindex']);
});

test('indexing: aurora/status turns ready with the fixture indexed', TEST_TIMEOUT, async () => {
  const st = await waitFor('every folder ready', async () => {
    const s = await requests.status(session.conn);
    return s.folders.length > 0 && s.folders.every((f) => f.state === 'ready') ? s : undefined;
  }, () => session.log());
  assert.equal(st.protocolVersion, 1);
  assert.equal(st.folders[0].filesIndexed, 5);
  assert.equal(st.llm.provider, 'openai');
  assert.equal(st.llm.model, 'fake');
  assert.deepEqual(st.config.problems, []);
  const indexing = session.progress.filter((p) => p.value?.title === 'Aurora: Indexing' || p.value?.kind === 'end');
  assert.ok(indexing.length > 0, `indexing progress on a server-created token; got ${JSON.stringify(session.progress)}`);
});

test('aurora/didChangeStatus feeds the status bar (§4.5)', TEST_TIMEOUT, async () => {
  const last = await waitFor('a didChangeStatus notification in state ready', () =>
    session.statuses.find((s) => s.state === 'ready'), () => `statuses: ${JSON.stringify(session.statuses)}\n${session.log()}`, 15_000);
  assert.equal(typeof last.message, 'string');
  assert.ok(Array.isArray(last.reasons));
  assert.equal(statusBarLook(last).text, '$(check) Aurora', JSON.stringify(last));
});

test('search: load_config in app/config.py on its def line', TEST_TIMEOUT, async () => {
  const r = await requests.search(session.conn, { query: 'load_config' });
  const first = r.results[0];
  assert.ok(first, `no results\n${session.log()}`);
  assert.equal(first.qualifiedName, 'load_config');
  assert.equal(first.kind, 'function');
  assert.equal(first.location.uri, fileUri('app/config.py'));
  assert.deepEqual(first.selectionRange.start, { line: 17, character: 4 });
  assert.equal(r.partial, false);
});

test('search: a cancelled request rejects with RequestCancelled or completes, and the server keeps serving', TEST_TIMEOUT, async () => {
  const cts = new CancellationTokenSource();
  const pending = requests.search(session.conn, { query: 'server loop' }, cts.token);
  cts.cancel();
  await pending.then(() => undefined, (e) => assert.equal(requests.errorCode(e), ErrorCodes.RequestCancelled));
  const again = await requests.search(session.conn, { query: 'apply_env_overrides' });
  assert.equal(again.results[0]?.qualifiedName, 'apply_env_overrides');
});

test('ask: streams partial results, then the answer with verified citations', TEST_TIMEOUT, async () => {
  const texts: string[] = [];
  const work: any[] = [];
  const { result, streamed } = await requests.ask(session.conn, {
    question: 'Where is the configuration loaded?',
    textDocument: { uri: fileUri('app/main.py') },
    position: { line: 9, character: 4 },
  }, { onText: (t) => texts.push(t), onWorkDone: (v) => work.push(v) });
  assert.ok(streamed.deltas > 0, 'partial results arrived before the result');
  assert.ok(texts[texts.length - 1].length > 0);
  assert.ok(result.answer.includes(ANSWER_SENTENCE), `answer: ${result.answer}`);
  assert.ok(result.citations.some((c) => c.uri === fileUri('app/config.py') && c.name === 'load_config'),
    `citations: ${JSON.stringify(result.citations)}`);
  for (const c of result.citations) {
    assert.equal(c.range.start.character, 0, 'chunk ranges start at column 0');
  }
  assert.ok(result.confidence > 0 && result.confidence <= 1);
  assert.equal(result.partial, false);
  assert.ok(work.some((v) => v.kind === 'begin'), `work-done progress: ${JSON.stringify(work)}`);
  const reqs = await fake.requests();
  assert.ok(reqs.length > 0, 'the provider was called');
});

test('ask: cancel rejects with RequestCancelled (-32800) and closes the provider stream', TEST_TIMEOUT, async () => {
  await fake.control({ chunkDelayMs: 400 });
  const before = (await fake.requests()).length;
  const cts = new CancellationTokenSource();
  let outcome: unknown;
  const pending = requests.ask(session.conn, { question: 'How does the server loop stop? Explain slowly.', noCache: true },
    { onText: () => cts.cancel() }, cts.token).then(() => 'resolved', (e) => e);
  try {
    outcome = await Promise.race([pending, new Promise((r) => setTimeout(() => r('no answer within 60 s'), WAIT_MS).unref())]);
  } finally {
    await fake.control({ chunkDelayMs: 20 });
  }
  assert.equal(requests.errorCode(outcome), ErrorCodes.RequestCancelled, `outcome: ${JSON.stringify(outcome)}\n${session.log()}`);
  await waitFor('the provider to see its stream closed', async () =>
    (await fake.requests()).slice(before).some((r) => r.disconnected), () => session.log());
  // The server keeps serving.
  const st = await requests.status(session.conn);
  assert.equal(st.protocolVersion, 1);
});

test('code action: Add docstring runs through executeCommand and workspace/applyEdit', TEST_TIMEOUT, async () => {
  const uri = fileUri('app/config.py');
  const text = fs.readFileSync(path.join(root, 'app', 'config.py'), 'utf8');
  await session.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'python', version: 1, text } });
  const actions: any[] = await session.conn.sendRequest('textDocument/codeAction', {
    textDocument: { uri },
    range: { start: { line: 18, character: 8 }, end: { line: 18, character: 8 } },
    context: { diagnostics: [], triggerKind: 1 },
  }) ?? [];
  const doc = actions.find((a) => a.kind === 'source.aurora.document');
  assert.ok(doc, `actions: ${JSON.stringify(actions)}`);
  assert.match(doc.title, /Add docstring to `load_config`/);
  assert.ok(actions.some((a) => a.kind === 'aurora.explain'), 'Explain is offered');
  const edits = session.applyEdits.length;
  const result: any = await session.conn.sendRequest('workspace/executeCommand', { command: doc.command.command, arguments: doc.command.arguments });
  assert.equal(result?.applied, true, JSON.stringify(result));
  const edit = session.applyEdits[edits];
  assert.ok(edit, 'workspace/applyEdit was sent');
  assert.ok(JSON.stringify(edit.edit).includes(DOCSTRING), JSON.stringify(edit));
  await session.conn.sendNotification('textDocument/didClose', { textDocument: { uri } });
});

test('reindex: aurora.reindex through workspace/executeCommand returns the pass summary', TEST_TIMEOUT, async () => {
  const r = await requests.reindex(session.conn, false);
  assert.equal(r.filesIndexed + r.filesUnchanged, 5, JSON.stringify(r));
  assert.equal(r.filesRemoved, 0);
  assert.ok(r.chunks >= 14, JSON.stringify(r));
});

test('every setting the extension contributes is accepted by the server', TEST_TIMEOUT, async () => {
  const all: { [k: string]: unknown } = {};
  for (const { key, node } of leaves(schema)) all[key] = node.default;
  const tree = explicitSettings(Object.keys(all), (k) => ({ globalValue: all[k] }));
  const s = await Session.start(undefined, tree);
  try {
    const st = await requests.status(s.conn);
    assert.deepEqual(st.config.problems, [], `the server rejected contributed settings:\n${JSON.stringify(st.config.problems, null, 2)}`);
  } finally {
    await s.stop();
  }
});
