// Settings: the `contributes.configuration` generated from the server's JSON Schema, and the
// explicitly-set values sent as initializationOptions / workspace/configuration answers (never
// package.json defaults, so they cannot mask the TOML files). No `vscode` import.

export interface SchemaNode {
  type?: string | string[];
  description?: string;
  markdownDescription?: string;
  default?: unknown;
  enum?: unknown[];
  enumDescriptions?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  pattern?: string;
  items?: SchemaNode;
  properties?: { [key: string]: SchemaNode };
  /** Aurora: may only come from the user's own settings (spec/lsp.md §7.1). */
  'x-restricted'?: boolean;
}

/** Settings only the extension reads; the server is never sent them. */
export const CLIENT_ONLY: { [key: string]: SchemaNode & { scope?: string } } = {
  'server.path': {
    type: 'string', default: '', scope: 'machine',
    markdownDescription: 'Path of the `aurora` binary. Empty: `aurora` on `PATH`, else the one bundled with the extension.',
  },
  'server.args': {
    type: 'array', items: { type: 'string' }, default: [], scope: 'machine',
    description: 'Extra arguments for `aurora lsp`.',
  },
  'server.env': {
    type: 'object', default: {}, scope: 'machine',
    description: 'Extra environment variables for the server process.',
  },
  'trace.server': {
    type: 'string', enum: ['off', 'messages', 'verbose'], default: 'off',
    description: 'Trace the messages between VS Code and the Aurora server (Aurora trace output channel).',
  },
};

export interface Leaf { key: string; node: SchemaNode }

/** Every leaf setting of the schema, as dotted keys (`llm.timeouts.connectMs`), in schema order. */
export function leaves(schema: SchemaNode, prefix = ''): Leaf[] {
  const out: Leaf[] = [];
  for (const [name, node] of Object.entries(schema.properties ?? {})) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (node.properties && (node.type === undefined || node.type === 'object')) {
      out.push(...leaves(node, key));
    } else {
      out.push({ key, node });
    }
  }
  return out;
}

export function restrictedKeys(schema: SchemaNode): string[] {
  return leaves(schema).filter((l) => l['node']['x-restricted']).map((l) => l.key);
}

/** `contributes.configuration` for package.json: every server key plus the client-only ones. */
export function contributedConfiguration(schema: SchemaNode): { title: string; properties: { [key: string]: unknown } } {
  const properties: { [key: string]: unknown } = {};
  let order = 0;
  for (const [key, node] of Object.entries(CLIENT_ONLY)) {
    properties[`aurora.${key}`] = { ...node, order: order++ };
  }
  for (const { key, node } of leaves(schema)) {
    const entry: { [key: string]: unknown } = {};
    for (const field of ['type', 'default', 'enum', 'enumDescriptions', 'minimum', 'maximum', 'exclusiveMinimum',
      'exclusiveMaximum', 'pattern', 'items', 'description', 'markdownDescription'] as const) {
      if (node[field] !== undefined) entry[field] = node[field];
    }
    if (node['x-restricted']) entry.scope = 'machine';
    else if (key.startsWith('indexing.') || key === 'privacy.denyGlobs') entry.scope = 'resource';
    else entry.scope = 'window';
    entry.order = order++;
    properties[`aurora.${key}`] = entry;
  }
  return { title: 'Aurora', properties };
}

/** What `WorkspaceConfiguration.inspect` tells about one key. */
export interface Inspected {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

function setNested(tree: { [key: string]: unknown }, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = tree;
  for (const p of parts.slice(0, -1)) {
    if (typeof node[p] !== 'object' || node[p] === null || Array.isArray(node[p])) node[p] = {};
    node = node[p] as { [key: string]: unknown };
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * The settings tree of explicitly set values (folder > workspace > user), for the server keys
 * `keys`. Restricted keys are taken from the user's own settings only.
 */
export function explicitSettings(
  keys: string[],
  inspect: (key: string) => Inspected | undefined,
  restricted: Iterable<string> = [],
): { [key: string]: unknown } {
  const onlyUser = new Set(restricted);
  const tree: { [key: string]: unknown } = {};
  for (const key of keys) {
    const i = inspect(key);
    if (!i) continue;
    const value = onlyUser.has(key)
      ? i.globalValue
      : i.workspaceFolderValue !== undefined ? i.workspaceFolderValue
        : i.workspaceValue !== undefined ? i.workspaceValue : i.globalValue;
    if (value !== undefined && value !== null) setNested(tree, key, value);
  }
  return tree;
}

/**
 * The server keys and the restricted ones, read back from package.json's contribution (which is
 * generated from the schema): restricted = machine-scoped, client-only keys left out.
 */
export function serverKeysFromPackage(pkg: unknown): { keys: string[]; restricted: string[] } {
  const properties = ((pkg as any)?.contributes?.configuration?.properties ?? {}) as { [k: string]: { scope?: string } };
  const keys: string[] = [];
  const restricted: string[] = [];
  for (const [full, node] of Object.entries(properties)) {
    const key = full.replace(/^aurora\./, '');
    if (key in CLIENT_ONLY) continue;
    keys.push(key);
    if (node.scope === 'machine') restricted.push(key);
  }
  return { keys, restricted };
}
