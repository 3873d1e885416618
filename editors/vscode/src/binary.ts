// Finding the `aurora` binary: aurora.server.path, else `aurora` on PATH, else the one bundled in
// a platform-specific VSIX (<extension>/bin/aurora[.exe]). No `vscode` import.

import * as fs from 'fs';
import * as path from 'path';

export interface BinaryLookup {
  /** aurora.server.path; empty = not set. */
  configured?: string;
  /** The PATH variable. */
  pathEnv?: string;
  extensionPath: string;
  platform?: NodeJS.Platform;
  isExecutable?: (p: string) => boolean;
}

export type BinaryFound =
  | { found: true; path: string; source: 'setting' | 'path' | 'bundled' }
  | { found: false; message: string };

function executable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export const MISSING_MESSAGE = 'Aurora: the `aurora` binary was not found. Install it or set aurora.server.path.';

export function resolveBinary(l: BinaryLookup): BinaryFound {
  const isExec = l.isExecutable ?? executable;
  const platform = l.platform ?? process.platform;
  const exe = platform === 'win32' ? 'aurora.exe' : 'aurora';
  const configured = (l.configured ?? '').trim();
  if (configured) {
    if (isExec(configured)) return { found: true, path: configured, source: 'setting' };
    return { found: false, message: `Aurora: aurora.server.path is ${configured}, which is not an executable file. Fix the setting or clear it to use \`aurora\` from PATH.` };
  }
  const sep = platform === 'win32' ? ';' : ':';
  for (const dir of (l.pathEnv ?? '').split(sep)) {
    if (!dir) continue;
    const candidate = path.join(dir, exe);
    if (isExec(candidate)) return { found: true, path: candidate, source: 'path' };
  }
  const bundled = path.join(l.extensionPath, 'bin', exe);
  if (isExec(bundled)) return { found: true, path: bundled, source: 'bundled' };
  return { found: false, message: MISSING_MESSAGE };
}

/** The variable the API key goes into: llm.apiKeyEnv, else the provider's default. */
export function apiKeyEnvName(provider: string | undefined, apiKeyEnv: string | undefined): string | undefined {
  if (apiKeyEnv && apiKeyEnv.trim()) return apiKeyEnv.trim();
  if (provider === 'anthropic') return 'ANTHROPIC_API_KEY';
  if (provider === 'openai') return 'OPENAI_API_KEY';
  return undefined;
}
