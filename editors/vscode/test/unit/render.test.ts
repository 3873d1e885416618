// Answer rendering, HTML escaping, citation labels and link targets, status bar looks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AskResult, Citation } from '../../src/protocol';
import {
  answerMarkdown, citationLabel, citationMarkdownLink, citationTarget, escapeHtml, footerText, relativePath,
  renderAnswerBody, renderAnswerPage, renderStatusBody, statusBarLook, uriToPath,
} from '../../src/render';

const FOLDERS = ['file:///home/u/proj'];

function citation(over: Partial<Citation> = {}): Citation {
  return {
    uri: 'file:///home/u/proj/app/config.py',
    range: { start: { line: 11, character: 0 }, end: { line: 29, character: 27 } },
    chunkId: 'k_3f9a1c0d2b7e',
    name: 'load_config',
    ...over,
  };
}

function result(over: Partial<AskResult> = {}): AskResult {
  return {
    conversationId: 'c_1', queryId: 'q_1', answer: 'Configuration is loaded by `load_config`.',
    citations: [citation()], confidence: 0.82, complexity: 'SIMPLE',
    phases: [{ name: 'synthesize', ms: 2140 }], usage: { inputTokens: 3120, outputTokens: 214, costUsd: 0.01257 },
    cached: false, indexGeneration: 57, partial: false, warnings: [], ...over,
  };
}

test('citation label is relative/path.py:first–last  qualified.name, 1-based', () => {
  assert.equal(citationLabel(citation(), FOLDERS), 'app/config.py:12–30  load_config');
});

test('a range ending at column 0 ends on the line before; one line shows one number', () => {
  const c = citation({ range: { start: { line: 4, character: 0 }, end: { line: 5, character: 0 } } });
  assert.equal(citationLabel(c, FOLDERS), 'app/config.py:5  load_config');
});

test('citations outside every folder keep their absolute path; percent-encoding is decoded', () => {
  assert.equal(relativePath('file:///tmp/other/x.py', FOLDERS), '/tmp/other/x.py');
  assert.equal(uriToPath('file:///home/u/my%20proj/a.py'), '/home/u/my proj/a.py');
  assert.equal(relativePath('file:///home/u/my%20proj/a.py', ['file:///home/u/my%20proj']), 'a.py');
  // A folder that is a prefix of another folder's name does not match.
  assert.equal(relativePath('file:///home/u/project2/a.py', FOLDERS), '/home/u/project2/a.py');
});

test('citation target opens the document with the cited range selected', () => {
  const c = citation();
  assert.deepEqual(citationTarget(c), { uri: c.uri, selection: c.range });
});

test('Markdown citation links are relative with a line anchor', () => {
  assert.equal(citationMarkdownLink(citation(), FOLDERS), '[app/config.py:12-30](app/config.py#L12) load_config');
  const spaced = citation({ uri: 'file:///home/u/proj/my%20pkg/a.py' });
  assert.match(citationMarkdownLink(spaced, FOLDERS), /\(my%20pkg\/a\.py#L12\)/);
});

test('answer HTML renders Markdown but never raw HTML from the model', () => {
  const html = renderAnswerBody({
    question: 'What is <b>this</b>?', state: 'done', text: 'Use **bold** and <script>alert(1)</script> `x<y`',
    result: result({ answer: '' }), elapsedMs: 2100,
  }, FOLDERS);
  assert.match(html, /<strong>bold<\/strong>/);
  assert.ok(!html.includes('<script>'), html);
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(html, /<code>x&lt;y<\/code>/);
  assert.match(html, /What is &lt;b&gt;this&lt;\/b&gt;\?/);
});

test('sources are clickable citations with their index; footer and badges', () => {
  const html = renderAnswerBody({
    question: 'q', state: 'done', text: 'a',
    result: result({ partial: true, cached: true, warnings: [{ code: 'indexIncomplete', message: 'The index is <still> being built' }] }),
    elapsedMs: 2100,
  }, FOLDERS);
  assert.match(html, /<a href="#" class="citation" data-cite="0" title="file:\/\/\/home\/u\/proj\/app\/config\.py">app\/config\.py:12–30  load_config<\/a>/);
  assert.match(html, /SIMPLE · confidence 0\.82 · 2\.1 s · \$0\.0126/);
  assert.match(html, /partial index/);
  assert.match(html, /cached/);
  assert.match(html, /The index is &lt;still&gt; being built/);
  assert.ok(!html.includes('data-action="stop"'), 'no Stop button once done');
});

test('a streaming answer shows progress and a Stop button; cancelled and failed states say so', () => {
  const streaming = renderAnswerBody({ question: 'q', state: 'streaming', text: 'partial', progress: 'Writing the answer' }, FOLDERS);
  assert.match(streaming, /data-action="stop"/);
  assert.match(streaming, /Writing the answer/);
  assert.match(streaming, /<p>partial<\/p>/);
  assert.match(renderAnswerBody({ question: 'q', state: 'cancelled', text: '' }, FOLDERS), /Cancelled\./);
  assert.match(renderAnswerBody({ question: 'q', state: 'error', text: '', error: 'No <key>' }, FOLDERS), /No &lt;key&gt;/);
});

test('the webview page has a strict CSP and only a nonce script', () => {
  const page = renderAnswerPage('<p>x</p>', 'N0nce', 'vscode-resource:');
  assert.match(page, /default-src 'none'/);
  assert.match(page, /script-src 'nonce-N0nce'/);
  assert.equal((page.match(/<script/g) ?? []).length, 1);
  assert.match(page, /<script nonce="N0nce">/);
});

test('answer Markdown has the question, answer, sources and footer', () => {
  const md = answerMarkdown({ question: 'Where?', state: 'done', text: 'Here.', result: result(), elapsedMs: 1000 }, FOLDERS);
  assert.equal(md, '# Where?\n\nHere.\n\n## Sources\n\n1. [app/config.py:12-30](app/config.py#L12) load_config\n\n_SIMPLE · confidence 0.82 · 1.0 s · $0.0126_\n');
});

test('footer text', () => {
  assert.equal(footerText(result({ confidence: 0, usage: { inputTokens: 0, outputTokens: 0, costUsd: 0 } }), 400),
    'SIMPLE · confidence 0.00 · 0.4 s · $0.0000');
});

test('escapeHtml escapes the five characters', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('status bar looks follow the server state', () => {
  assert.deepEqual(statusBarLook({ state: 'indexing', busy: true, message: 'Indexing 120/884 files', reasons: ['llmNotConfigured'], indexing: { done: 120, total: 884 } }),
    { text: '$(sync~spin) Aurora 120/884', tooltip: 'Indexing 120/884 files\n• llmNotConfigured' });
  assert.equal(statusBarLook({ state: 'ready', busy: false, message: 'Ready', reasons: [] }).text, '$(check) Aurora');
  const degraded = statusBarLook({ state: 'degraded', busy: false, message: 'Search only: no LLM configured', reasons: ['llmNotConfigured'] });
  assert.deepEqual([degraded.text, degraded.background], ['$(warning) Aurora: no LLM', 'warning']);
  const error = statusBarLook({ state: 'error', busy: false, message: 'No folder has a usable index', reasons: ['storeError'] });
  assert.deepEqual([error.text, error.background], ['$(error) Aurora', 'error']);
});

test('status panel escapes and lists folders, LLM and config problems', () => {
  const html = renderStatusBody({
    state: 'degraded', message: 'Configuration problems', serverVersion: '0.1.0', protocolVersion: 1,
    positionEncoding: 'utf-16', indexGeneration: 3,
    folders: [{ uri: 'file:///w', storePath: '/w/.aurora/memory.db', state: 'ready', filesIndexed: 5, chunks: 14, skipped: { binary: 1 }, staleFiles: 0, watcher: 'server', dbBytes: 1 }],
    llm: { provider: 'openai', model: 'm', state: 'configured' },
    config: { sources: ['defaults'], problems: [{ keyPath: 'aurora.llm.modle', source: 'VS Code settings', message: 'unknown key <x>' }] },
    activeRequests: 0, queuedRequests: 0,
  });
  assert.match(html, /<b>\/w<\/b> — ready, 5 files, 14 chunks/);
  assert.match(html, /skipped: binary 1/);
  assert.match(html, /openai · m — configured/);
  assert.match(html, /<code>aurora\.llm\.modle<\/code>: unknown key &lt;x&gt;/);
  assert.match(html, /data-action="reindex"/);
});
