// Wire types of Aurora's custom methods (spec/lsp.md §4); plain data, no `vscode` import.

export const PROTOCOL_VERSION = 1;

export interface Position { line: number; character: number }
export interface Range { start: Position; end: Position }
export interface Location { uri: string; range: Range }

export type PhaseName = 'assess' | 'retrieve' | 'decompose' | 'verify' | 'route'
  | 'collect' | 'synthesize' | 'record' | 'respond';
export type Complexity = 'SIMPLE' | 'MEDIUM' | 'COMPLEX' | 'CRITICAL';

export interface Citation { uri: string; range: Range; chunkId: string; name: string; stale?: boolean }
export interface Usage { inputTokens: number; outputTokens: number; costUsd: number }
export interface Warning { code: string; message: string }

export interface AskParams {
  question: string;
  textDocument?: { uri: string };
  range?: Range;
  position?: Position;
  conversationId?: string;
  noCache?: boolean;
  workDoneToken?: string | number;
  partialResultToken?: string | number;
}

export interface AskPartialResult { delta: string; phase: PhaseName; reset?: boolean }

export interface AskResult {
  conversationId: string;
  queryId: string;
  answer: string;
  citations: Citation[];
  confidence: number;
  complexity: Complexity;
  phases: { name: PhaseName; ms: number }[];
  usage: Usage;
  cached: boolean;
  indexGeneration: number;
  partial: boolean;
  warnings: Warning[];
}

export interface SearchParams {
  query: string;
  limit?: number;
  kinds?: string[];
  paths?: string[];
  textDocument?: { uri: string };
  position?: Position;
}

export interface SearchItem {
  location: Location;
  selectionRange: Range;
  name: string;
  qualifiedName: string;
  kind: string;
  chunkId: string;
  signature?: string;
  score: number;
  breakdown: { bm25: number; activation: number; spreading: number; contextBoost: number };
}

export interface SearchResult { results: SearchItem[]; partial: boolean; indexGeneration: number; tookMs: number }

export type ServerState = 'starting' | 'indexing' | 'ready' | 'degraded' | 'error';

export interface FolderStatus {
  uri: string; storePath: string; state: 'opening' | 'indexing' | 'ready' | 'readOnly' | 'error';
  filesIndexed: number; filesTotal?: number; chunks: number;
  skipped: { [reason: string]: number }; staleFiles: number;
  watcher: string; lastIndexedAt?: string; dbBytes: number; error?: string;
}

export interface StatusResult {
  state: ServerState; message: string; serverVersion: string; protocolVersion: number;
  positionEncoding: 'utf-8' | 'utf-16'; indexGeneration: number;
  folders: FolderStatus[];
  llm: { provider: string; model?: string; state: string; message?: string; lastLatencyMs?: number };
  budget?: { period: string; spentUsd: number; monthlyUsd: number; perQueryUsd: number; state: string };
  config: { sources: string[]; problems: { keyPath: string; source: string; message: string }[] };
  activeRequests: number; queuedRequests: number;
}

export interface DidChangeStatusParams {
  state: ServerState;
  busy: boolean;
  message: string;
  reasons: string[];
  indexing?: { done: number; total: number };
  command?: { title: string; command: string };
}

/** `ActionArgs` of the code-action commands (§5.2). */
export interface ActionArgs {
  textDocument: { uri: string; version: number };
  range: Range;
  chunkId?: string;
  question?: string;
  instruction?: string;
}

export const ErrorCodes = {
  RequestCancelled: -32800,
  ContentModified: -32801,
  InvalidParams: -32602,
  InternalError: -32603,
  RequestFailed: -32803,
  LlmNotConfigured: -33001,
  LlmUnavailable: -33002,
  LlmRequestFailed: -33003,
  BudgetExceeded: -33004,
  IndexNotReady: -33005,
  TooManyRequests: -33006,
} as const;
