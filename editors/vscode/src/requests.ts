// The extension's request and progress code, written against a minimal connection interface that
// both vscode-languageclient's `LanguageClient` and vscode-jsonrpc's `MessageConnection` satisfy,
// so the protocol test drives the real server through exactly this code. No `vscode` import.

import { ProgressType } from 'vscode-jsonrpc';
import type { WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport } from 'vscode-languageserver-protocol';
import {
  AskParams, AskPartialResult, AskResult, DidChangeStatusParams, SearchParams, SearchResult, StatusResult,
} from './protocol';

export interface Disposable { dispose(): unknown }

/** A cancellation token as both vscode and vscode-jsonrpc define it. */
export interface Token {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: (e: unknown) => unknown, thisArgs?: unknown, disposables?: Disposable[]): Disposable;
}

/**
 * Sends a request with a token only when there is one: vscode-jsonrpc would send a trailing
 * `undefined` as a second positional parameter.
 */
function send<R>(conn: AuroraConnection, method: string, param: unknown, token?: Token): Promise<R> {
  return token ? conn.sendRequest<R>(method, param, token) : conn.sendRequest<R>(method, param);
}

/** What the extension needs from a connection to the server. */
export interface AuroraConnection {
  sendRequest<R>(method: string, param: unknown, token?: Token): Promise<R>;
  onProgress<P>(type: ProgressType<P>, token: string | number, handler: (params: P) => void): Disposable;
  onNotification(method: string, handler: (params: any) => void): Disposable;
}

export type WorkDoneValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

const partialType = new ProgressType<AskPartialResult>();
const workDoneType = new ProgressType<WorkDoneValue>();

let tokenCounter = 0;
/** A pair of progress tokens unique within this extension host. */
export function newTokens(): { workDoneToken: string; partialResultToken: string } {
  tokenCounter += 1;
  const n = `${process.pid}-${tokenCounter}`;
  return { workDoneToken: `aurora-w-${n}`, partialResultToken: `aurora-p-${n}` };
}

/**
 * The text an answer view shows while an answer streams: deltas appended, `reset` discards what
 * came before (a synthesis attempt was redone).
 */
export class StreamedText {
  text = '';
  deltas = 0;
  resets = 0;
  apply(value: AskPartialResult): string {
    if (value.reset) {
      this.text = '';
      this.resets += 1;
    }
    if (typeof value.delta === 'string') {
      this.text += value.delta;
      this.deltas += 1;
    }
    return this.text;
  }
}

export interface AskHandlers {
  /** Called with the whole streamed text after each partial result. */
  onText?(text: string, value: AskPartialResult): void;
  /** Work-done progress of the request's phases. */
  onWorkDone?(value: WorkDoneValue): void;
}

/**
 * `aurora/ask` with streaming: partial results on a fresh `partialResultToken`, phase progress on
 * a fresh `workDoneToken`. Cancelling `token` sends `$/cancelRequest`; the promise then rejects
 * with the server's RequestCancelled (-32800).
 */
export async function ask(
  conn: AuroraConnection,
  params: Omit<AskParams, 'workDoneToken' | 'partialResultToken'>,
  handlers: AskHandlers = {},
  token?: Token,
): Promise<{ result: AskResult; streamed: StreamedText }> {
  const tokens = newTokens();
  const streamed = new StreamedText();
  const subscriptions: Disposable[] = [
    conn.onProgress(partialType, tokens.partialResultToken, (value) => {
      handlers.onText?.(streamed.apply(value), value);
    }),
    conn.onProgress(workDoneType, tokens.workDoneToken, (value) => handlers.onWorkDone?.(value)),
  ];
  try {
    const result = await send<AskResult>(conn, 'aurora/ask', { ...params, ...tokens }, token);
    return { result, streamed };
  } finally {
    for (const s of subscriptions) s.dispose();
  }
}

export function search(conn: AuroraConnection, params: SearchParams, token?: Token): Promise<SearchResult> {
  return send<SearchResult>(conn, 'aurora/search', params, token);
}

export function status(conn: AuroraConnection, token?: Token): Promise<StatusResult> {
  return send<StatusResult>(conn, 'aurora/status', {}, token);
}

export interface ReindexResult {
  filesIndexed: number; filesUnchanged: number; filesRemoved: number;
  skipped: { [reason: string]: number }; chunks: number; ms: number;
}

export function reindex(conn: AuroraConnection, force: boolean, token?: Token): Promise<ReindexResult> {
  return send<ReindexResult>(conn, 'workspace/executeCommand', {
    command: 'aurora.reindex',
    arguments: [{ force }],
  }, token);
}

export function onStatus(conn: AuroraConnection, handler: (params: DidChangeStatusParams) => void): Disposable {
  return conn.onNotification('aurora/didChangeStatus', handler);
}

/** The error code of a rejected request, if it has one. */
export function errorCode(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number'
    ? (e as { code: number }).code
    : undefined;
}
