// The answer panel: a webview that shows one question's streamed text, then the final answer with
// clickable citations; Stop, Copy and Open as Markdown. Rendering itself lives in render.ts.

import * as crypto from 'crypto';
import * as vscode from 'vscode';
import { AskResult } from './protocol';
import { answerMarkdown, AnswerView, citationTarget, renderAnswerBody, renderAnswerPage } from './render';

/** Updates are coalesced to at most one render per this many milliseconds while streaming. */
const RENDER_INTERVAL_MS = 50;

export class AnswerPanel {
  private readonly panel: vscode.WebviewPanel;
  private view: AnswerView;
  private pending: NodeJS.Timeout | undefined;
  private stopHandlers: (() => void)[] = [];

  constructor(question: string, private readonly folders: () => string[]) {
    this.view = { question, state: 'streaming', text: '', progress: 'Thinking…' };
    const title = question.length > 40 ? question.slice(0, 39) + '…' : question;
    this.panel = vscode.window.createWebviewPanel('aurora.answer', `Aurora: ${title}`,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      { enableScripts: true, localResourceRoots: [], retainContextWhenHidden: true });
    const nonce = crypto.randomBytes(16).toString('base64');
    this.panel.webview.html = renderAnswerPage(renderAnswerBody(this.view, this.folders()), nonce, this.panel.webview.cspSource);
    this.panel.webview.onDidReceiveMessage((m: { type: string; index?: number }) => this.onMessage(m));
    this.panel.onDidDispose(() => {
      if (this.view.state === 'streaming') this.stop();
    });
  }

  onStop(handler: () => void): void {
    this.stopHandlers.push(handler);
  }

  streamed(text: string): void {
    this.view.text = text;
    this.schedule();
  }

  progress(message: string | undefined): void {
    if (message) {
      this.view.progress = message;
      this.schedule();
    }
  }

  done(result: AskResult, elapsedMs: number): void {
    Object.assign(this.view, { state: 'done', text: result.answer, result, elapsedMs });
    this.render();
  }

  cancelled(): void {
    this.view.state = 'cancelled';
    this.render();
  }

  failed(message: string): void {
    Object.assign(this.view, { state: 'error', error: message });
    this.render();
  }

  private stop(): void {
    for (const h of this.stopHandlers) h();
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => this.render(), RENDER_INTERVAL_MS);
  }

  private render(): void {
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
    void this.panel.webview.postMessage({ type: 'update', html: renderAnswerBody(this.view, this.folders()) });
  }

  private async onMessage(m: { type: string; index?: number }): Promise<void> {
    switch (m.type) {
      case 'stop':
        this.stop();
        break;
      case 'copy':
        await vscode.env.clipboard.writeText(answerMarkdown(this.view, this.folders()));
        break;
      case 'openMarkdown': {
        const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: answerMarkdown(this.view, this.folders()) });
        await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside });
        break;
      }
      case 'open': {
        const c = this.view.result?.citations[m.index ?? -1];
        if (!c) return;
        const target = citationTarget(c);
        const r = target.selection;
        await vscode.window.showTextDocument(vscode.Uri.parse(target.uri), {
          selection: new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character),
          viewColumn: vscode.ViewColumn.One,
        });
        break;
      }
    }
  }
}
