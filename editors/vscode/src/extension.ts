// Aurora for VS Code: starts `aurora lsp` with vscode-languageclient, and adds the Ask, Search,
// Reindex and Status commands, the streaming answer panel, the status bar item and the settings
// bridge (spec/lsp.md §8.1).

import * as crypto from 'crypto';
import * as vscode from 'vscode';
import {
  ClientCapabilities, ConfigurationParams, FeatureState, LanguageClient, LanguageClientOptions, ServerOptions,
  StaticFeature, TransportKind,
} from 'vscode-languageclient/node';
import { AnswerPanel } from './answerPanel';
import { apiKeyEnvName, resolveBinary } from './binary';
import { fillAuroraCapabilities } from './capabilities';
import { ActionArgs, AskParams, ErrorCodes, PROTOCOL_VERSION, SearchItem } from './protocol';
import { renderAnswerPage, renderStatusBody, relativePath, statusBarLook } from './render';
import * as requests from './requests';
import { explicitSettings, serverKeysFromPackage } from './settings';

const EXPLAIN = 'Explain what this code does and how it is used in the workspace.';
const SECRET_KEY = 'aurora.apiKey';
/** Keystrokes in the search box are coalesced over this long before a request is sent. */
const SEARCH_DEBOUNCE_MS = 150;

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let statusPanel: vscode.WebviewPanel | undefined;
let extensionContext: vscode.ExtensionContext;
let serverKeys: string[] = [];
let restricted: string[] = [];

/** Declares `experimental.aurora` in the client capabilities. */
class AuroraCapabilities implements StaticFeature {
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    fillAuroraCapabilities(capabilities);
  }
  initialize(): void {}
  getState(): FeatureState {
    return { kind: 'static' };
  }
  clear(): void {}
}

function folders(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
}

/** Explicitly set `aurora.*` server settings for a scope (never package.json defaults). */
function serverSettings(scope?: vscode.Uri): { [key: string]: unknown } {
  const config = vscode.workspace.getConfiguration('aurora', scope);
  return explicitSettings(serverKeys, (key) => config.inspect(key), restricted);
}

function loadSchemaKeys(context: vscode.ExtensionContext): void {
  // package.json's contribution is generated from the schema; read the keys back from it.
  ({ keys: serverKeys, restricted } = serverKeysFromPackage(context.extension.packageJSON));
}

function setStatus(params: Parameters<typeof statusBarLook>[0]): void {
  const look = statusBarLook(params);
  statusItem.text = look.text;
  statusItem.tooltip = look.tooltip;
  statusItem.backgroundColor = look.background ? new vscode.ThemeColor(`statusBarItem.${look.background}Background`) : undefined;
  statusItem.show();
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration('aurora');
  const binary = resolveBinary({
    configured: config.inspect<string>('server.path')?.globalValue,
    pathEnv: process.env.PATH,
    extensionPath: context.extensionPath,
  });
  if (!binary.found) {
    setStatus({ state: 'error', busy: false, message: 'The aurora binary was not found', reasons: [] });
    const choice = await vscode.window.showErrorMessage(binary.message, 'Open Settings', 'Install Instructions');
    if (choice === 'Open Settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'aurora.server.path');
    } else if (choice === 'Install Instructions') {
      await vscode.commands.executeCommand('markdown.showPreview', vscode.Uri.joinPath(context.extensionUri, 'README.md'));
    }
    return;
  }
  output.info(`starting ${binary.path} (${binary.source})`);
  const env: { [key: string]: string | undefined } = { ...process.env, ...(config.inspect<{ [k: string]: string }>('server.env')?.globalValue ?? {}) };
  const settings = serverSettings();
  const llm = (settings.llm ?? {}) as { provider?: string; apiKeyEnv?: string };
  const key = await context.secrets.get(SECRET_KEY);
  const keyEnv = apiKeyEnvName(llm.provider, llm.apiKeyEnv);
  if (key && keyEnv) env[keyEnv] = key; // only ever in the child's environment, never logged
  const serverOptions: ServerOptions = {
    command: binary.path,
    args: ['lsp', ...(config.inspect<string[]>('server.args')?.globalValue ?? [])],
    transport: TransportKind.stdio,
    options: { env },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }],
    outputChannel: output,
    traceOutputChannel: vscode.window.createOutputChannel('Aurora Trace', { log: true }),
    initializationOptions: settings,
    middleware: {
      workspace: {
        configuration: async (params: ConfigurationParams, token, next) => {
          const others = params.items.filter((i) => i.section !== 'aurora');
          const fromNext = others.length ? await next({ items: others }, token) : [];
          const rest = Array.isArray(fromNext) ? [...fromNext] : [];
          return params.items.map((item) => item.section === 'aurora'
            ? serverSettings(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
            : rest.shift() ?? null);
        },
      },
      executeCommand: async (command, args, next) => {
        if (command === 'aurora.explain') {
          const a = (args[0] ?? {}) as ActionArgs;
          return runAsk({ question: a.question ?? EXPLAIN, textDocument: a.textDocument ? { uri: a.textDocument.uri } : undefined, range: a.range });
        }
        if (command === 'aurora.ask') {
          const a = { ...(args[0] ?? {}) } as AskParams;
          delete a.workDoneToken;
          delete a.partialResultToken;
          return runAsk(a);
        }
        if (command === 'aurora.refactor') {
          const instruction = await vscode.window.showInputBox({
            prompt: 'How should Aurora refactor the selection? (empty = simplify without changing behaviour)',
          });
          if (instruction === undefined) return undefined;
          const a = { ...(args[0] ?? {}) } as ActionArgs;
          if (instruction.trim()) a.instruction = instruction;
          return next(command, [a]);
        }
        return next(command, args);
      },
    },
  };
  const c = new LanguageClient('aurora', 'Aurora', serverOptions, clientOptions);
  c.registerFeature(new AuroraCapabilities());
  c.onNotification('aurora/didChangeStatus', setStatus);
  client = c;
  try {
    await c.start();
  } catch (e) {
    output.error(`the Aurora server did not start: ${String(e)}`);
    setStatus({ state: 'error', busy: false, message: 'The Aurora server did not start', reasons: [] });
    return;
  }
  const experimental = c.initializeResult?.capabilities.experimental as { aurora?: { protocolVersion?: number } } | undefined;
  const version = experimental?.aurora?.protocolVersion;
  if (version !== PROTOCOL_VERSION) {
    const server = c.initializeResult?.serverInfo?.version ?? 'unknown version';
    void vscode.window.showErrorMessage(`Aurora: ${binary.path} (${server}) speaks Aurora protocol ${version}; this extension speaks ${PROTOCOL_VERSION}. Update one of them.`);
    await c.stop();
    client = undefined;
  }
}

function requireClient(): LanguageClient | undefined {
  if (!client || !client.isRunning()) {
    void vscode.window.showErrorMessage('Aurora: the server is not running. See "Aurora: Show logs".');
    return undefined;
  }
  return client;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : typeof e === 'object' && e && 'message' in e ? String((e as { message: unknown }).message) : String(e);
}

/** Streams one `aurora/ask` into a new answer panel, with phase progress and cancel. */
async function runAsk(params: Omit<AskParams, 'workDoneToken' | 'partialResultToken'>): Promise<unknown> {
  const c = requireClient();
  if (!c) return undefined;
  const panel = new AnswerPanel(params.question, folders);
  const cts = new vscode.CancellationTokenSource();
  panel.onStop(() => cts.cancel());
  const started = Date.now();
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Aurora', cancellable: true },
    async (progress, progressToken) => {
      progressToken.onCancellationRequested(() => cts.cancel());
      let percent = 0;
      try {
        const { result } = await requests.ask(c, params, {
          onText: (text) => panel.streamed(text),
          onWorkDone: (v) => {
            if (v.kind === 'end') return;
            const increment = v.percentage !== undefined ? Math.max(0, v.percentage - percent) : undefined;
            if (v.percentage !== undefined) percent = Math.max(percent, v.percentage);
            progress.report({ message: v.message, increment });
            panel.progress(v.message);
          },
        }, cts.token);
        panel.done(result, Date.now() - started);
        return result;
      } catch (e) {
        if (requests.errorCode(e) === ErrorCodes.RequestCancelled) {
          panel.cancelled();
        } else {
          panel.failed(errorMessage(e));
          void vscode.window.showErrorMessage(`Aurora: ${errorMessage(e)}`);
        }
        return undefined;
      } finally {
        cts.dispose();
      }
    });
}

function editorContext(): { textDocument?: { uri: string }; position?: { line: number; character: number } } {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.uri.scheme !== 'file') return {};
  const p = editor.selection.active;
  return { textDocument: { uri: editor.document.uri.toString() }, position: { line: p.line, character: p.character } };
}

async function askWorkspace(): Promise<void> {
  const question = await vscode.window.showInputBox({ prompt: 'Ask Aurora about the workspace', placeHolder: 'Where is the configuration loaded?' });
  if (!question || !question.trim()) return;
  await runAsk({ question: question.trim(), ...editorContext() });
}

async function askSelection(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showInformationMessage('Aurora: select some code first.');
    return;
  }
  const question = await vscode.window.showInputBox({ prompt: 'Ask Aurora about the selection (empty = explain it)' });
  if (question === undefined) return;
  const s = editor.selection;
  await runAsk({
    question: question.trim() || EXPLAIN,
    textDocument: { uri: editor.document.uri.toString() },
    range: { start: { line: s.start.line, character: s.start.character }, end: { line: s.end.line, character: s.end.character } },
  });
}

interface SearchPick extends vscode.QuickPickItem { item: SearchItem }

async function searchWorkspace(): Promise<void> {
  const c = requireClient();
  if (!c) return;
  const qp = vscode.window.createQuickPick<SearchPick>();
  qp.placeholder = 'Search the workspace with Aurora';
  qp.matchOnDescription = false;
  let cts: vscode.CancellationTokenSource | undefined;
  let timer: NodeJS.Timeout | undefined;
  const context = editorContext();
  qp.onDidChangeValue((value) => {
    if (timer) clearTimeout(timer);
    cts?.cancel();
    if (!value.trim()) {
      qp.items = [];
      return;
    }
    timer = setTimeout(async () => {
      const mine = new vscode.CancellationTokenSource();
      cts = mine;
      qp.busy = true;
      try {
        const result = await requests.search(c, { query: value.trim(), ...context }, mine.token);
        if (mine.token.isCancellationRequested) return;
        qp.items = result.results.map((item) => ({
          label: item.qualifiedName,
          description: `${relativePath(item.location.uri, folders())}:${item.selectionRange.start.line + 1}`,
          detail: `${item.kind} · ${item.score.toFixed(2)}${result.partial ? ' · index still building' : ''}`,
          alwaysShow: true,
          item,
        }));
      } catch (e) {
        if (requests.errorCode(e) !== ErrorCodes.RequestCancelled) output.warn(`search failed: ${errorMessage(e)}`);
      } finally {
        if (cts === mine) qp.busy = false;
      }
    }, SEARCH_DEBOUNCE_MS);
  });
  qp.onDidAccept(async () => {
    const picked = qp.selectedItems[0]?.item;
    qp.hide();
    if (!picked) return;
    const r = picked.selectionRange;
    const editor = await vscode.window.showTextDocument(vscode.Uri.parse(picked.location.uri), {
      selection: new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character),
    });
    const full = picked.location.range;
    editor.revealRange(new vscode.Range(full.start.line, 0, full.end.line, 0), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  });
  qp.onDidHide(() => {
    cts?.cancel();
    qp.dispose();
  });
  qp.show();
}

async function reindexWorkspace(): Promise<void> {
  const c = requireClient();
  if (!c) return;
  const choice = await vscode.window.showInformationMessage('Aurora: reindex the workspace', { modal: true },
    'Changed files', 'Everything (force)');
  if (!choice) return;
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Aurora: Reindexing', cancellable: true },
    async (_progress, token) => {
      try {
        const r = await requests.reindex(c, choice !== 'Changed files', token);
        void vscode.window.showInformationMessage(
          `Aurora: ${r.filesIndexed} files indexed, ${r.filesUnchanged} unchanged, ${r.filesRemoved} removed (${r.chunks} chunks).`);
      } catch (e) {
        if (requests.errorCode(e) !== ErrorCodes.RequestCancelled) void vscode.window.showErrorMessage(`Aurora: ${errorMessage(e)}`);
      }
    });
}

async function showStatus(): Promise<void> {
  const c = requireClient();
  if (!c) return;
  let st;
  try {
    st = await requests.status(c);
  } catch (e) {
    void vscode.window.showErrorMessage(`Aurora: ${errorMessage(e)}`);
    return;
  }
  if (!statusPanel) {
    statusPanel = vscode.window.createWebviewPanel('aurora.status', 'Aurora Status', vscode.ViewColumn.Active,
      { enableScripts: true, localResourceRoots: [] });
    statusPanel.onDidDispose(() => (statusPanel = undefined));
    statusPanel.webview.onDidReceiveMessage((m: { type: string }) => {
      if (m.type === 'reindex') void vscode.commands.executeCommand('aurora.reindexWorkspace');
      if (m.type === 'showLogs') output.show();
      if (m.type === 'openSettings') void vscode.commands.executeCommand('workbench.action.openSettings', 'aurora');
    });
  }
  const nonce = crypto.randomBytes(16).toString('base64');
  statusPanel.webview.html = renderAnswerPage(renderStatusBody(st), nonce, statusPanel.webview.cspSource);
  statusPanel.reveal();
}

async function restartServer(): Promise<void> {
  if (client) {
    try {
      await client.stop();
    } catch (e) {
      output.warn(`stopping the server: ${errorMessage(e)}`);
    }
    client = undefined;
  }
  await startClient(extensionContext);
}

async function setApiKey(): Promise<void> {
  const key = await vscode.window.showInputBox({ prompt: 'API key for your Aurora LLM provider (stored in VS Code\'s secret storage)', password: true, ignoreFocusOut: true });
  if (key === undefined) return;
  if (key.trim()) await extensionContext.secrets.store(SECRET_KEY, key.trim());
  else await extensionContext.secrets.delete(SECRET_KEY);
  await restartServer();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionContext = context;
  output = vscode.window.createOutputChannel('Aurora', { log: true });
  statusItem = vscode.window.createStatusBarItem('aurora.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'Aurora';
  statusItem.command = 'aurora.showStatus';
  setStatus({ state: 'starting', busy: true, message: 'Starting Aurora', reasons: [] });
  loadSchemaKeys(context);
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand('aurora.askWorkspace', askWorkspace),
    vscode.commands.registerCommand('aurora.askSelection', askSelection),
    vscode.commands.registerCommand('aurora.searchWorkspace', searchWorkspace),
    vscode.commands.registerCommand('aurora.reindexWorkspace', reindexWorkspace),
    vscode.commands.registerCommand('aurora.showStatus', showStatus),
    vscode.commands.registerCommand('aurora.showLogs', () => output.show()),
    vscode.commands.registerCommand('aurora.restartServer', restartServer),
    vscode.commands.registerCommand('aurora.setApiKey', setApiKey),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration('aurora')) return;
      if (e.affectsConfiguration('aurora.server')) {
        await restartServer();
      } else if (client?.isRunning()) {
        // Pull-capable servers re-read workspace/configuration; the settings ride along for the others.
        await client.sendNotification('workspace/didChangeConfiguration', { settings: { aurora: serverSettings() } });
      }
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  if (client) await client.stop();
}
