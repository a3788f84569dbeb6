// A Runtime in a worker_threads worker: each thread loads the addon and
// makes its own runtimes; a runtime cannot be handed to another thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { cra, RESOURCES } from './helpers.mjs';

const INDEX = new URL('../index.js', import.meta.url).pathname;

function inWorker(code, workerData) {
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (c) => { if (c !== 0) reject(new Error(`worker exited with ${c}`)); });
  });
}

const WORK = `
const { parentPort, workerData } = require('node:worker_threads');
const { Runtime, CraError } = require(workerData.index);
(async () => {
  const rt = new Runtime({ atlases: [workerData.atlas] });
  const sid = rt.createSession({ agentId: 'worker', goal: 'Manage resources' });
  for (let i = 0; i < 1000; i++) rt.record(sid, 'x.w', { i });
  const res = rt.resolve({ carp_version: '1.0', request_id: require('node:crypto').randomUUID(),
    timestamp: rt.timestamp(), operation: 'resolve',
    requester: { agent_id: 'worker', session_id: sid }, task: { goal: 'Manage resources' } });
  let err = null;
  try { rt.record(sid, 'bad', {}); } catch (e) { err = e instanceof CraError ? e.code : String(e); }
  await rt.flush();
  const v = rt.verify(sid);
  await rt.close();
  parentPort.postMessage({ events: v.eventCount, valid: v.valid, decision: res.decision.type, err });
})().catch((e) => parentPort.postMessage({ failed: String(e) }));
`;

test('runtimes work in worker threads, side by side with the main thread', async () => {
  const main = new cra.Runtime();
  const sid = main.createSession({ agentId: 'main', goal: 'g' });
  const results = await Promise.all([1, 2, 3].map(() => inWorker(WORK, { index: INDEX, atlas: RESOURCES })));
  for (const r of results) {
    assert.equal(r.failed, undefined, r.failed);
    assert.equal(r.valid, true);
    assert.ok(r.events > 1000);
    assert.equal(r.decision, 'partial');
    assert.equal(r.err, 'INVALID_EVENT_TYPE');
  }
  main.record(sid, 'x.after', {});
  assert.equal(main.verify(sid).valid, true);
  await main.close();
});

test('a Runtime cannot be posted to a worker: refused with a clear error', () => {
  const rt = new cra.Runtime();
  const { port1, port2 } = new MessageChannel();
  assert.throws(() => port1.postMessage(rt), (e) => e.name === 'DataCloneError'
    && /belongs to the thread that made it/.test(e.message));
  assert.throws(() => port1.postMessage({ nested: [rt] }), { name: 'DataCloneError' });
  port1.close();
  port2.close();
});
