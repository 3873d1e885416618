// The request code against an in-memory connection: tokens, streaming with reset, cleanup.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask, AuroraConnection, StreamedText } from '../../src/requests';

test('streamed text appends deltas and reset discards them', () => {
  const s = new StreamedText();
  s.apply({ delta: 'Hello ', phase: 'synthesize' });
  s.apply({ delta: 'wrold', phase: 'synthesize' });
  assert.equal(s.apply({ delta: 'Hello world', phase: 'synthesize', reset: true }), 'Hello world');
  assert.deepEqual([s.deltas, s.resets], [3, 1]);
});

test('ask sends fresh tokens, streams partial values and disposes its progress handlers', async () => {
  const handlers = new Map<string | number, (v: any) => void>();
  let sent: any;
  const conn: AuroraConnection = {
    onProgress(_type, token, handler) {
      handlers.set(token, handler as (v: any) => void);
      return { dispose: () => handlers.delete(token) };
    },
    onNotification() { return { dispose() {} }; },
    async sendRequest<R>(method: string, params: any): Promise<R> {
      sent = { method, params };
      handlers.get(params.workDoneToken)?.({ kind: 'begin', title: 'Aurora: Thinking' });
      handlers.get(params.partialResultToken)?.({ delta: 'It is ', phase: 'synthesize' });
      handlers.get(params.partialResultToken)?.({ delta: 'here.', phase: 'synthesize' });
      return { answer: 'It is here.' } as R;
    },
  };
  const texts: string[] = [];
  const work: any[] = [];
  const { result, streamed } = await ask(conn, { question: 'Where?' }, { onText: (t) => texts.push(t), onWorkDone: (v) => work.push(v) });
  assert.equal(sent.method, 'aurora/ask');
  assert.equal(sent.params.question, 'Where?');
  assert.match(sent.params.workDoneToken, /^aurora-w-/);
  assert.match(sent.params.partialResultToken, /^aurora-p-/);
  assert.notEqual(sent.params.workDoneToken, sent.params.partialResultToken);
  assert.deepEqual(texts, ['It is ', 'It is here.']);
  assert.equal(work[0].kind, 'begin');
  assert.equal(result.answer, 'It is here.');
  assert.equal(streamed.deltas, 2);
  assert.equal(handlers.size, 0, 'progress handlers are disposed');
});

test('a failed ask still disposes its handlers and rejects with the error', async () => {
  const handlers = new Set<string | number>();
  const conn: AuroraConnection = {
    onProgress(_t, token) { handlers.add(token); return { dispose: () => handlers.delete(token) }; },
    onNotification() { return { dispose() {} }; },
    async sendRequest<R>(): Promise<R> { throw Object.assign(new Error('Cancelled.'), { code: -32800 }); },
  };
  await assert.rejects(ask(conn, { question: 'q' }), { code: -32800 });
  assert.equal(handlers.size, 0);
});
