// The client capabilities Aurora adds to what vscode-languageclient declares. No `vscode` import:
// the protocol test sends exactly these.

import { PROTOCOL_VERSION } from './protocol';

export const AURORA_EXPERIMENTAL = { protocolVersion: PROTOCOL_VERSION, client: 'vscode', answerView: true } as const;

/** Adds `experimental.aurora` to a ClientCapabilities object, in place. */
export function fillAuroraCapabilities(capabilities: { experimental?: unknown }): void {
  const experimental = (capabilities.experimental ?? {}) as { [key: string]: unknown };
  experimental.aurora = { ...AURORA_EXPERIMENTAL };
  capabilities.experimental = experimental;
}
