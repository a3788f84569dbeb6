// The conformance cases of python/cra/conformance_cases/, run from Node the
// way python/cra/conformance.py runs them: resolve (golden, policy and
// resolution files), request, atlas, hash, chain and flow (execute,
// approvals, validate, a manual clock, session lifetimes). Skipped, with
// the reason: diff and replay (the audit tools are not bound in Node).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { cra, CASES, match, substitute, snake, executeRequest, rawTree } from './helpers.mjs';

const { Runtime, CraError, ManualClock, checkRequest, eventHash, verifyChain } = cra;

function loadCases() {
  const out = [];
  for (const name of readdirSync(CASES).filter((f) => f.endsWith('.json')).sort()) {
    const src = readFileSync(path.join(CASES, name), 'utf8');
    const raw = rawTree(src).keys.cases?.items ?? [];
    JSON.parse(src).cases?.forEach((c, n) => out.push({ file: name, raw: raw[n].keys, ...c }));
  }
  return out;
}

const source = (src) => (typeof src === 'string' ? path.join(CASES, src) : src);
const shape = (events) => events.map((e) => ({ event_type: e.event_type, payload: e.payload }));

function caseResolve(c) {
  const sess = c.session ?? {};
  const rt = new Runtime({ clockSkewSeconds: null });
  for (const src of c.atlases ?? []) rt.loadAtlas(source(src));
  const sid = rt.createSession({
    agentId: sess.agent_id ?? 'conformance-agent', goal: sess.goal ?? 'conformance',
  });
  c.steps.forEach((step, n) => {
    const before = step.events_from_start ? 0 : rt.events(sid).length;
    const request = substitute(step.request, { $session: sid, $now: rt.timestamp() });
    const exp = step.expect;
    let res;
    try {
      res = rt.resolve(request);
    } catch (e) {
      if (!(e instanceof CraError)) throw e;
      if (!('error' in exp)) throw new Error(`step ${n}: ${e.code}: ${e.message}`);
      match({ code: e.code, path: e.path }, exp.error, `/steps/${n}/error`);
    }
    if (res !== undefined) {
      if ('error' in exp) throw new Error(`step ${n}: expected error ${JSON.stringify(exp.error)}`);
      if ('resolution' in exp) match(res.toJSON(), exp.resolution, '', exp.exact ?? false);
    }
    if ('events' in exp) match(shape(rt.events(sid).slice(before)), exp.events, `/steps/${n}/events`);
  });
  assert.ok(rt.verify(sid).valid, 'the trace verifies');
}

function caseRequest(c) {
  const faults = checkRequest(c.request);
  if (c.expect.valid) {
    assert.deepEqual(faults, []);
    return;
  }
  assert.ok(faults.length > 0, 'expected invalid, got valid');
  const paths = faults.map((f) => f.path);
  for (const p of c.expect.paths ?? []) assert.ok(paths.includes(p), `a fault at ${p}: ${JSON.stringify(faults)}`);
}

function caseAtlas(c) {
  const exp = c.expect;
  const rt = new Runtime();
  try {
    for (const dep of c.load_first ?? []) rt.loadAtlas(source(dep));
    rt.loadAtlas(source(c.atlas));
  } catch (e) {
    if (!(e instanceof CraError)) throw e;
    assert.ok(!exp.valid, `expected valid, got ${e.code}: ${e.message}`);
    const paths = e.errors.map((f) => f.path);
    for (const p of exp.paths ?? []) assert.ok(paths.includes(p), `a fault at ${p}: ${JSON.stringify(e.errors)}`);
    if ('code' in exp) assert.equal(e.code, exp.code);
    return;
  }
  assert.ok(exp.valid, 'expected the atlas to be rejected, it loaded');
}

function caseHash(c) {
  // The event's text as written: its numbers are hashed as they stand.
  for (const [alg, want] of Object.entries(c.expect)) assert.equal(eventHash(alg, c.raw.event.raw), want, alg);
}

function caseChain(c) {
  const v = verifyChain(c.raw.events.items.map((e) => e.raw));
  match({ valid: v.valid, error: v.error, index: v.index }, c.expect);
}


async function caseFlow(c) {
  const sess = c.session ?? {};
  const agent = sess.agent_id ?? 'conformance-agent', goal = sess.goal ?? 'conformance';
  const clock = new ManualClock(c.clock ?? 1_800_000_000.0);
  const ttl = c.session_ttl ?? {};
  const rt = new Runtime({
    atlases: (c.atlases ?? []).map(source), clock,
    sessionIdleSeconds: ttl.idle_timeout, sessionMaxSeconds: ttl.max_lifetime,
  });
  const failing = new Set(c.failing ?? []);
  for (const info of rt.atlases()) {
    for (const id of info.actions) {
      rt.registerExecutor(id, async (parameters) => {
        if (failing.has(id)) throw new Error(`${id} failed on purpose`);
        return { action_id: id, parameters };
      });
    }
  }
  const sid = rt.createSession({ agentId: agent, goal });
  const resolutions = {}, responses = {};
  const names = () => ({ $session: sid, $now: rt.timestamp(),
    ...(resolutions.default ? { $resolution: resolutions.default.resolution_id } : {}) });
  const run = async (step) => {
    if ('resolve' in step) {
      const res = rt.resolve(substitute(step.resolve, names()));
      resolutions[step.save ?? 'default'] = res;
      return res.toJSON();
    }
    if ('execute' in step) {
      const e = step.execute;
      const rid = e.resolution_id ?? resolutions[e.resolution ?? 'default'].resolution_id;
      const resp = await rt.execute(executeRequest(rt, sid, agent, goal, rid, e.action_id,
        e.parameters ?? {}, { idempotencyKey: e.idempotency_key, requestId: e.request_id }));
      if ('save' in step) responses[step.save] = resp;
      return resp;
    }
    if ('approve' in step || 'reject' in step) {
      const a = step.approve ?? step.reject;
      const approvalId = resolutions[a.resolution ?? 'default'].decision.approval_id;
      if ('approve' in step) {
        return snake(rt.approve(approvalId, a.approver ?? 'conformance',
          { note: a.note, actionId: a.action_id, scope: a.scope ?? 'once' }));
      }
      return snake(rt.reject(approvalId, a.approver ?? 'conformance', { note: a.note }));
    }
    if ('pending' in step) return { pending: snake(rt.pendingApprovals(sid)) };
    if ('validate' in step) return rt.validate(substitute(step.validate, names()));
    if ('advance' in step) {
      clock.advance(Number(step.advance));
      return null;
    }
    if ('same_response' in step) {
      const [a, b] = step.same_response;
      assert.equal(responses[a].execution_id, responses[b].execution_id, `responses ${a} and ${b}`);
      return null;
    }
    if ('end_session' in step) {
      rt.endSession(sid, step.end_session);
      return null;
    }
    throw new Error(`unknown step ${Object.keys(step)}`);
  };
  for (const [n, step] of c.steps.entries()) {
    const exp = step.expect ?? {};
    let got;
    try {
      got = await run(step);
    } catch (e) {
      if (!(e instanceof CraError)) throw e;
      if (!('error' in exp)) throw new Error(`step ${n}: ${e.code}: ${e.message}`);
      match({ code: e.code, path: e.path }, exp.error, `/steps/${n}/error`);
      continue;
    }
    if ('error' in exp) match(got, { error: exp.error }, `/steps/${n}`);
    for (const key of ['response', 'resolution', 'report', 'decision', 'pending']) {
      if (key in exp) match(got, exp[key], `/steps/${n}`);
    }
    if ('events' in exp) {
      const events = shape(rt.events(sid));
      match(events.slice(events.length - exp.events.length), exp.events, `/steps/${n}/events`);
    }
  }
  assert.ok(rt.verify(sid).valid, 'the trace verifies');
  await rt.close();
}

const RUNNERS = {
  resolve: caseResolve, request: caseRequest, atlas: caseAtlas,
  hash: caseHash, chain: caseChain, flow: caseFlow,
};
const NOT_BOUND = { diff: 'the audit tools (diff) are not bound in Node', replay: 'the audit tools (replay) are not bound in Node' };

for (const c of loadCases()) {
  const skip = NOT_BOUND[c.kind] ?? (RUNNERS[c.kind] ? null : `no runner for kind ${c.kind}`);
  test(`${c.file} ${c.kind} ${c.id}`, skip ? { skip } : {}, () => RUNNERS[c.kind](c));
}
