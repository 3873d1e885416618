// Rendering for the answer panel, the status panel and the status bar: HTML (markdown-it with raw
// HTML disabled), citation labels and link targets. No `vscode` import, so node tests can run it.

import MarkdownIt from 'markdown-it';
import { AskResult, Citation, DidChangeStatusParams, Range, StatusResult } from './protocol';

const md = new MarkdownIt({ html: false, linkify: false, typographer: false });

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Markdown to HTML; raw HTML in the text is shown as text, never interpreted. */
export function markdownToHtml(text: string): string {
  return md.render(text);
}

/** A `file:` URI to a path (percent-decoded); other URIs unchanged. */
export function uriToPath(uri: string): string {
  if (!uri.startsWith('file://')) return uri;
  let rest = uri.slice('file://'.length);
  // file://host/path: only the local host (empty or localhost) is expected.
  if (rest.startsWith('localhost/')) rest = rest.slice('localhost'.length);
  const path = decodeURIComponent(rest);
  // Windows: /c:/x -> c:/x
  return /^\/[A-Za-z]:/.test(path) ? path.slice(1) : path;
}

/** The path of `uri` relative to the first folder (given as URIs or paths) that contains it. */
export function relativePath(uri: string, folders: string[]): string {
  const path = uriToPath(uri);
  for (const folder of folders) {
    const root = uriToPath(folder).replace(/\/+$/, '');
    if (path.startsWith(root + '/')) return path.slice(root.length + 1);
  }
  return path;
}

/** 1-based first and last line of a range; a range ending at column 0 ends on the line before. */
export function lineSpan(range: Range): { first: number; last: number } {
  const first = range.start.line + 1;
  let last = range.end.line + 1;
  if (range.end.character === 0 && last > first) last -= 1;
  return { first, last };
}

/** `relative/path.py:12–30  qualified.name` (spec/lsp.md §8.1). */
export function citationLabel(c: Citation, folders: string[]): string {
  const { first, last } = lineSpan(c.range);
  const lines = first === last ? `${first}` : `${first}–${last}`;
  return `${relativePath(c.uri, folders)}:${lines}  ${c.name}`;
}

/** Where clicking a citation goes: the document, with the cited range selected. */
export function citationTarget(c: Citation): { uri: string; selection: Range } {
  return { uri: c.uri, selection: c.range };
}

/** A Markdown link to the citation, relative to a document at the workspace root. */
export function citationMarkdownLink(c: Citation, folders: string[]): string {
  const { first, last } = lineSpan(c.range);
  const rel = relativePath(c.uri, folders);
  const label = `${rel}:${first === last ? first : `${first}-${last}`}`;
  const target = rel.split('/').map(encodeURIComponent).join('/');
  return `[${label}](${target}#L${first}) ${c.name}`;
}

export type AnswerState = 'streaming' | 'done' | 'cancelled' | 'error';

export interface AnswerView {
  question: string;
  state: AnswerState;
  /** Streamed text while running; the final answer once done. */
  text: string;
  progress?: string;
  result?: AskResult;
  error?: string;
  elapsedMs?: number;
}

/** `SIMPLE · confidence 0.82 · 2.1 s · $0.0126`. */
export function footerText(result: AskResult, elapsedMs: number): string {
  const parts = [
    result.complexity,
    `confidence ${(result.confidence ?? 0).toFixed(2)}`,
    `${(elapsedMs / 1000).toFixed(1)} s`,
    `$${(result.usage?.costUsd ?? 0).toFixed(4)}`,
  ];
  return parts.join(' · ');
}

/** The panel's body: question, text, sources, footer with badges, toolbar. */
export function renderAnswerBody(view: AnswerView, folders: string[]): string {
  const out: string[] = [];
  out.push(`<header><h1 class="question">${escapeHtml(view.question)}</h1>`);
  const running = view.state === 'streaming';
  out.push('<nav class="toolbar">');
  if (running) out.push('<button data-action="stop">Stop</button>');
  out.push('<button data-action="copy">Copy</button>');
  out.push('<button data-action="openMarkdown">Open as Markdown</button>');
  out.push('</nav></header>');
  if (running && view.progress) out.push(`<p class="progress">${escapeHtml(view.progress)}</p>`);
  out.push(`<section class="answer">${markdownToHtml(view.text)}</section>`);
  if (view.state === 'cancelled') out.push('<p class="notice">Cancelled.</p>');
  if (view.state === 'error') out.push(`<p class="error">${escapeHtml(view.error ?? 'The request failed.')}</p>`);
  const result = view.result;
  if (result) {
    if (result.citations.length > 0) {
      out.push('<section class="sources"><h2>Sources</h2><ol>');
      result.citations.forEach((c, i) => {
        const stale = c.stale ? ' <span class="badge">changed since read</span>' : '';
        out.push(`<li><a href="#" class="citation" data-cite="${i}" title="${escapeHtml(c.uri)}">`
          + `${escapeHtml(citationLabel(c, folders))}</a>${stale}</li>`);
      });
      out.push('</ol></section>');
    }
    const badges: string[] = [];
    if (result.partial) badges.push('<span class="badge">partial index</span>');
    if (result.cached) badges.push('<span class="badge">cached</span>');
    for (const w of result.warnings ?? []) {
      badges.push(`<span class="badge warning" title="${escapeHtml(w.code)}">${escapeHtml(w.message)}</span>`);
    }
    out.push(`<footer>${escapeHtml(footerText(result, view.elapsedMs ?? 0))} ${badges.join(' ')}</footer>`);
  }
  return out.join('\n');
}

/** The whole webview document: strict CSP, one nonce'd script that only posts messages. */
export function renderAnswerPage(body: string, nonce: string, cspSource: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${cspSource} 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<style nonce="${nonce}">
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 0 1em; }
h1.question { font-size: 1.2em; }
.toolbar button { margin-right: .5em; }
.progress, .notice { opacity: .8; font-style: italic; }
.error { color: var(--vscode-errorForeground); }
.badge { border: 1px solid var(--vscode-badge-background); border-radius: 3px; padding: 0 .3em; margin-left: .3em; }
.badge.warning { border-color: var(--vscode-editorWarning-foreground); }
footer { margin-top: 1em; opacity: .8; }
pre { background: var(--vscode-textCodeBlock-background); padding: .5em; overflow-x: auto; }
</style></head>
<body><div id="root">${body}</div>
<script nonce="${nonce}">
const vscode = acquireVsCodeApi();
window.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'update') document.getElementById('root').innerHTML = e.data.html;
});
document.addEventListener('click', (e) => {
  const cite = e.target.closest('[data-cite]');
  if (cite) { e.preventDefault(); vscode.postMessage({ type: 'open', index: Number(cite.dataset.cite) }); return; }
  const action = e.target.closest('[data-action]');
  if (action) { vscode.postMessage({ type: action.dataset.action }); return; }
  const link = e.target.closest('a');
  if (link) e.preventDefault();
});
</script></body></html>`;
}

/** The answer as a Markdown document (Open as Markdown; also what Copy copies). */
export function answerMarkdown(view: AnswerView, folders: string[]): string {
  const lines = [`# ${view.question}`, '', view.text.trimEnd()];
  const result = view.result;
  if (result && result.citations.length > 0) {
    lines.push('', '## Sources', '');
    result.citations.forEach((c, i) => lines.push(`${i + 1}. ${citationMarkdownLink(c, folders)}`));
  }
  if (result) lines.push('', `_${footerText(result, view.elapsedMs ?? 0)}_`);
  return lines.join('\n') + '\n';
}

export interface StatusBarLook {
  text: string;
  tooltip: string;
  background?: 'warning' | 'error';
}

/** The status bar item for a didChangeStatus notification (spec/lsp.md §8.1). */
export function statusBarLook(s: DidChangeStatusParams): StatusBarLook {
  const reasons = s.reasons ?? [];
  const tooltip = [s.message, ...reasons.map((r) => `• ${r}`)].filter(Boolean).join('\n');
  switch (s.state) {
    case 'indexing':
      return { text: s.indexing ? `$(sync~spin) Aurora ${s.indexing.done}/${s.indexing.total}` : '$(sync~spin) Aurora', tooltip };
    case 'starting':
      return { text: '$(sync~spin) Aurora', tooltip };
    case 'ready':
      return { text: s.busy ? '$(sync~spin) Aurora' : '$(check) Aurora', tooltip };
    case 'degraded':
      return {
        text: reasons.includes('llmNotConfigured') ? '$(warning) Aurora: no LLM' : '$(warning) Aurora',
        tooltip,
        background: 'warning',
      };
    case 'error':
    default:
      return { text: '$(error) Aurora', tooltip, background: 'error' };
  }
}

/** `aurora/status` as HTML for the status panel, with its three buttons. */
export function renderStatusBody(st: StatusResult): string {
  const out: string[] = [];
  out.push(`<h1>Aurora ${escapeHtml(st.serverVersion)}</h1>`);
  out.push(`<p>State: <b>${escapeHtml(st.state)}</b> — ${escapeHtml(st.message)}<br>`
    + `Protocol ${st.protocolVersion}, positions ${escapeHtml(st.positionEncoding)}, index generation ${st.indexGeneration}</p>`);
  out.push('<nav class="toolbar"><button data-action="reindex">Reindex</button>'
    + '<button data-action="showLogs">Show Logs</button><button data-action="openSettings">Open Settings</button></nav>');
  out.push('<h2>Folders</h2><ul>');
  for (const f of st.folders) {
    const files = f.filesTotal !== undefined ? `${f.filesIndexed}/${f.filesTotal} files` : `${f.filesIndexed} files`;
    const skipped = Object.entries(f.skipped ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
    out.push(`<li><b>${escapeHtml(uriToPath(f.uri))}</b> — ${escapeHtml(f.state)}, ${files}, ${f.chunks} chunks, `
      + `watcher ${escapeHtml(f.watcher)}<br><small>store ${escapeHtml(f.storePath)}</small>`
      + (skipped ? `<br><small>skipped: ${escapeHtml(skipped)}</small>` : '')
      + (f.error ? `<br><span class="error">${escapeHtml(f.error)}</span>` : '') + '</li>');
  }
  out.push('</ul><h2>LLM</h2>');
  const llm = st.llm;
  out.push(`<p>${escapeHtml(llm.provider)}${llm.model ? ' · ' + escapeHtml(llm.model) : ''} — ${escapeHtml(llm.state)}`
    + (llm.message ? `<br>${escapeHtml(llm.message)}` : '') + '</p>');
  if (st.budget) {
    out.push(`<p>Budget: $${st.budget.spentUsd.toFixed(2)} of $${st.budget.monthlyUsd.toFixed(2)} (${escapeHtml(st.budget.period)}, ${escapeHtml(st.budget.state)})</p>`);
  }
  out.push('<h2>Configuration</h2>');
  if (st.config.problems.length === 0) {
    out.push(`<p>No problems. Sources: ${escapeHtml(st.config.sources.join(', '))}</p>`);
  } else {
    out.push('<ul>' + st.config.problems.map((p) =>
      `<li>${escapeHtml(p.source)}: <code>${escapeHtml(p.keyPath)}</code>: ${escapeHtml(p.message)}</li>`).join('') + '</ul>');
  }
  out.push(`<p>Requests: ${st.activeRequests} active, ${st.queuedRequests} queued</p>`);
  return out.join('\n');
}
