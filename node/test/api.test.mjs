// The JS API: sessions, custom events, flush/close, errors as CraError,
// execute with sync and async executors, approvals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cra, RESOURCES, CASES, resolveRequest, executeRequest } from './helpers.mjs';

const { Runtime, CraError, verifyJsonl } = cra;

test('version is the crate version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(cra.version, pkg.version);
});

test('sessions, custom events, verify and export', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cra-node-'));
  const rt = new Runtime({ traceFile: path.join(dir, 'live.trace.jsonl'), hashAlgorithm: 'blake3' });
  assert.equal(rt.hashAlgorithm, 'blake3');
  const sid = rt.createSession({ agentId: 'agent', goal: 'test' });
  for (let i = 0; i < 100; i++) rt.record(sid, 'x.step', { i, z: 'last', a: [true, null] });
  assert.equal(await rt.flush(), true);
  const events = rt.events(sid);
  assert.equal(events.length, 101);
  assert.equal(events[1].event_type, 'x.step');
  assert.equal(JSON.stringify(events[1].payload), '{"a":[true,null],"i":0,"z":"last"}');
  assert.equal(rt.events(sid, { eventType: 'x.step', limit: 5 }).length, 5);
  const v = rt.verify(sid);
  assert.equal(v.valid, true);
  assert.equal(v.algorithm, 'blake3');
  assert.equal(rt.getSession(sid).status, 'active');
  rt.endSession(sid);
  assert.equal(rt.listSessions('ended').length, 1);
  const out = path.join(dir, 'export.trace.jsonl');
  assert.equal(rt.exportJsonl(out, sid), 102);
  const report = await verifyJsonl(out);
  assert.equal(report.valid, true);
  assert.equal(report.eventCount, 102);
  assert.equal(await rt.close(), true);
  assert.equal(rt.closed, true);
  const live = await verifyJsonl(path.join(dir, 'live.trace.jsonl'));
  assert.equal(live.valid, true);
  assert.equal(live.eventCount, 102);
});

test('record switches sessions and types, and reads payloads of any length', async () => {
  const rt = new Runtime();
  const a = rt.createSession({ agentId: 'agent', goal: 'a' });
  const b = rt.createSession({ agentId: 'agent', goal: 'b' });
  // record() hands the session and type to the addon only when they change.
  const plan = [[a, 'x.one'], [a, 'x.one'], [b, 'x.one'], [a, 'x.two'], [b, 'x.two'], [b, 'x.two']];
  plan.forEach(([sid, type], i) => rt.record(sid, type, { i }));
  // Texts around the addon's 1 KiB and 16 KiB read buffers, with
  // characters of 1 to 4 UTF-8 bytes at the edge.
  const texts = [];
  for (const base of [1000, 16370]) {
    for (let n = base; n < base + 30; n++) {
      for (const c of ['a', '\u00e9', '\u20ac', '\u{1f600}']) texts.push('x'.repeat(n) + c.repeat(3));
    }
  }
  for (const t of texts) rt.record(b, 'x.text', { t });
  await rt.flush();
  const types = (sid) => rt.events(sid).slice(1).map((e) => [e.event_type, e.payload.i ?? e.payload.t]);
  assert.deepEqual(types(a), [['x.one', 0], ['x.one', 1], ['x.two', 3]]);
  assert.deepEqual(types(b), [['x.one', 2], ['x.two', 4], ['x.two', 5], ...texts.map((t) => ['x.text', t])]);
  assert.equal(rt.verify(b).valid, true);
  rt.endSession(a);
  assert.throws(() => rt.record(a, 'x.two', {}), { code: 'SESSION_ENDED' });
  rt.record(b, 'x.two', { after: true });
  assert.throws(() => rt.record(a, 'x.two', {}), { code: 'SESSION_ENDED' });
  await rt.close();
});

test('errors are CraError with code, category and path', async () => {
  const rt = new Runtime();
  const sid = rt.createSession({ agentId: 'agent', goal: 'test' });
  assert.throws(() => rt.record(sid, 'session.started', {}), (e) => e instanceof CraError
    && e instanceof Error && e.code === 'INVALID_EVENT_TYPE' && e.category === 'validation'
    && e.path === '/event_type');
  assert.throws(() => rt.record(sid, 'x.ok', [1]), { name: 'CraError', code: 'INVALID_PAYLOAD' });
  const cycle = {};
  cycle.self = cycle;
  for (const bad of [() => 1, Symbol('s'), 10n, cycle]) {
    assert.throws(() => rt.record(sid, 'x.ok', bad), { name: 'CraError', code: 'INVALID_PAYLOAD', path: '' });
  }
  assert.throws(() => rt.record('not-a-uuid', 'x.ok', {}), { code: 'INVALID_REQUEST', path: '/session_id' });
  assert.throws(() => rt.getSession('0193a0b0-0000-7000-8000-000000000001'),
    { code: 'SESSION_NOT_FOUND', category: 'not_found' });
  assert.throws(() => rt.resolve({ operation: 'resolve' }), (e) => e.code === 'INVALID_REQUEST'
    && e.errors.length > 0 && e.errors.every((f) => typeof f.path === 'string'));
  assert.throws(() => rt.loadAtlas(path.join(CASES, 'atlases', 'missing-file')), { category: 'validation' });
  assert.throws(() => new Runtime({ hashAlgorithm: 'md5' }), { code: 'INVALID_OPTION' });
  assert.throws(() => new Runtime({ nope: 1 }), { code: 'INVALID_OPTION', path: '/nope' });
  await assert.rejects(verifyJsonl('/nonexistent/x.trace.jsonl'), CraError);
  await rt.close();
  assert.throws(() => rt.record(sid, 'x.late', {}), CraError);
});

function setup() {
  const rt = new Runtime({ atlases: [RESOURCES] });
  const sid = rt.createSession({ agentId: 'node-agent', goal: 'Manage resources' });
  const res = rt.resolve(resolveRequest(rt, sid, 'Manage resources'));
  const exec = (action, params) => rt.execute(
    executeRequest(rt, sid, 'node-agent', 'Manage resources', res.resolution_id, action, params));
  return { rt, sid, res, exec };
}

test('execute: a sync executor, an async one that yields to the event loop, failures', async () => {
  const { rt, sid, exec } = setup();
  rt.registerExecutor('resource.list', () => [{ id: 'r1' }]);
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 1);
  rt.registerExecutor('resource.get', async ({ resource_id }) => {
    await new Promise((r) => setTimeout(r, 30));
    return { resource_id, name: 'one' };
  });
  const [listed, got] = await Promise.all([exec('resource.list', {}), exec('resource.get', { resource_id: 'r1' })]);
  clearInterval(timer);
  assert.ok(ticks > 3, `the event loop ran while the executor waited (${ticks} ticks)`);
  assert.equal(listed.status, 'success');
  assert.deepEqual(listed.result, [{ id: 'r1' }]);
  assert.deepEqual(got.result, { resource_id: 'r1', name: 'one' });

  rt.registerExecutor('resource.create', async () => { throw new RangeError('no room'); });
  const failed = await exec('resource.create', { name: 'x' });
  assert.equal(failed.status, 'error');
  assert.equal(failed.error.code, 'EXECUTION_FAILED');
  assert.equal(failed.error.message, 'no room');
  assert.equal(failed.error.details.exception, 'RangeError');

  const none = await exec('resource.update', { resource_id: 'r1' });
  assert.equal(none.error.code, 'NO_EXECUTOR');
  const denied = await exec('resource.delete', { resource_id: 'r1' });
  assert.equal(denied.status, 'denied');
  const bad = await exec('resource.get', {});
  assert.notEqual(bad.status, 'success');
  const types = rt.events(sid).map((e) => e.event_type);
  assert.ok(types.includes('action.executed') || types.some((t) => t.startsWith('action.')), types.join());
  assert.equal(rt.verify(sid).valid, true);
  await rt.close();
});

test('approve and reject', async () => {
  const rt = new Runtime({ atlases: [path.join(CASES, 'atlases', 'payments')] });
  const sid = rt.createSession({ agentId: 'node-agent', goal: 'Refund' });
  const resolve = () => rt.resolve(resolveRequest(rt, sid, 'Refund', { task: { goal: 'Refund', risk_tier: 'high' } }));
  const res = resolve();
  assert.equal(res.decision.type, 'requires_approval');
  const approvalId = res.decision.approval_id;
  rt.registerExecutor('payment.refund', (p) => ({ refunded: p.amount }));
  const run = (r) => rt.execute(executeRequest(rt, sid, 'node-agent', 'Refund', r.resolution_id,
    'payment.refund', { order_id: 'o-1', amount: 20 }));
  const waiting = await run(res);
  assert.equal(waiting.status, 'pending_approval');
  assert.equal(rt.pendingApprovals(sid).length, 1);
  const d = rt.approve(approvalId, 'alice', { actionId: 'payment.refund' });
  assert.equal(d.granted, true);
  assert.equal(d.approver, 'alice');
  assert.equal((await run(res)).status, 'success');
  const second = resolve();
  const r = rt.reject(second.decision.approval_id, 'bob', { note: 'no' });
  assert.equal(r.granted, false);
  assert.throws(() => rt.approve('0193a0b0-0000-7000-8000-000000000001', 'x'), CraError);
  await rt.close();
});

test('a manual clock, session lifetimes, heartbeats and validate', async () => {
  const clock = new cra.ManualClock(1_800_000_000);
  const rt = new Runtime({ clock, sessionIdleSeconds: 60, heartbeatIntervalSeconds: 10, atlases: [RESOURCES] });
  assert.throws(() => new Runtime({ clock: {} }), TypeError);
  const sid = rt.createSession({ agentId: 'node-agent', goal: 'g' });
  assert.equal(rt.timestamp(), '2027-01-15T08:00:00.000000Z');
  clock.advance(5);
  rt.heartbeat(sid);
  assert.deepEqual(rt.expireSessions(), []);
  clock.advance(61);
  assert.deepEqual(rt.expireSessions(), [sid]);
  assert.equal(rt.getSession(sid).status, 'ended');
  const other = rt.createSession({ agentId: 'node-agent', goal: 'g' });
  assert.deepEqual(rt.validate(resolveRequest(rt, other, 'Manage resources')), { valid: true, errors: [] });
  const bad = rt.validate({ operation: 'resolve' });
  assert.equal(bad.valid, false);
  assert.ok(bad.errors.length > 0);
  await rt.close();
});
