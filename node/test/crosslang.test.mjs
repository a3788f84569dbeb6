// Node and Python read each other's traces, and both agree with the
// TRACE/1.0 vectors of specs/vectors/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cra, REPO, RESOURCES, PYTHON, hasPython, resolveRequest, rawTree } from './helpers.mjs';

const { Runtime, verifyJsonl, verifyChain, eventHash } = cra;
const NO_PYTHON = hasPython ? false : `skipped: no ${PYTHON} (run \`make build\` for the Python package)`;
const VECTORS = path.join(REPO, 'specs', 'vectors');

async function nodeTrace(dir, hashAlgorithm) {
  const file = path.join(dir, `node-${hashAlgorithm}.trace.jsonl`);
  const rt = new Runtime({ traceFile: file, hashAlgorithm, atlases: [RESOURCES] });
  const sid = rt.createSession({ agentId: 'node-agent', goal: 'Manage resources' });
  rt.record(sid, 'x.note', { text: 'café 😀', n: 3, nested: { b: [1, 2.5, 'x'], a: null } });
  rt.resolve(resolveRequest(rt, sid, 'Manage resources'));
  rt.endSession(sid);
  await rt.close();
  return file;
}

test('a trace written from Node agrees with the hash vectors\' algorithm', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cra-node-'));
  for (const alg of ['sha256', 'blake3']) {
    const file = await nodeTrace(dir, alg);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    for (const line of lines) {
      assert.equal(eventHash(alg, line), JSON.parse(line).event_hash);
    }
    assert.equal(verifyChain(lines).valid, true);
  }
});

test('the hash vectors of specs/vectors/hash-vectors.json', () => {
  const src = readFileSync(path.join(VECTORS, 'hash-vectors.json'), 'utf8');
  const raw = rawTree(src).keys.cases.items;
  const cases = JSON.parse(src).cases;
  assert.ok(cases.length > 0);
  cases.forEach((c, n) => {
    for (const alg of ['sha256', 'blake3']) {
      assert.equal(eventHash(alg, raw[n].keys.event.raw), c[alg], `${c.name} ${alg}`);
    }
  });
});

test('the chain vectors of specs/vectors/chains.json', () => {
  const src = readFileSync(path.join(VECTORS, 'chains.json'), 'utf8');
  const raw = rawTree(src).keys.cases.items;
  JSON.parse(src).cases.forEach((c, n) => {
    const v = verifyChain(raw[n].keys.events.items.map((e) => e.raw));
    assert.deepEqual({ valid: v.valid, error: v.error, index: v.index },
      { valid: c.valid, error: c.error, index: c.index }, c.name);
  });
});

test('a trace written from Node verifies with `python -m cra trace verify`', { skip: NO_PYTHON }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cra-node-'));
  for (const alg of ['sha256', 'blake3']) {
    const file = await nodeTrace(dir, alg);
    const out = spawnSync(PYTHON, ['-m', 'cra', 'trace', 'verify', '--json', file], { encoding: 'utf8' });
    assert.equal(out.status, 0, `${alg}: ${out.stdout}${out.stderr}`);
  }
  const bad = await nodeTrace(dir, 'sha256');
  const lines = readFileSync(bad, 'utf8').split('\n');
  assert.ok(lines[1].includes('"n":3'));
  lines[1] = lines[1].replace('"n":3', '"n":4');
  (await import('node:fs')).writeFileSync(bad, lines.join('\n'));
  const out = spawnSync(PYTHON, ['-m', 'cra', 'trace', 'verify', bad], { encoding: 'utf8' });
  assert.notEqual(out.status, 0, 'a tampered Node trace fails in Python');
  assert.equal((await verifyJsonl(bad)).valid, false, 'and in Node');
});

test('a trace written from Python verifies from Node', { skip: NO_PYTHON }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cra-node-'));
  const script = `
import sys, cra
rt = cra.Runtime(trace_file=sys.argv[1], hash_algorithm=sys.argv[2])
sid = rt.create_session(agent_id="py-agent", goal="cross")
for i in range(50):
    rt.record(sid, "x.py", {"i": i, "f": 2.0, "big": 12345678901234567890, "s": "\\u00e9"})
rt.end_session(sid)
rt.close()
`;
  for (const alg of ['sha256', 'blake3']) {
    const file = path.join(dir, `py-${alg}.trace.jsonl`);
    const out = spawnSync(PYTHON, ['-c', script, file, alg], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const report = await verifyJsonl(file);
    assert.equal(report.valid, true, JSON.stringify(report));
    assert.equal(report.eventCount, 52);
    assert.equal(report.sessions[0].algorithm, alg);
  }
});
