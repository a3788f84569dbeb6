// Benchmarks of the Node binding (figures in docs/performance.md):
//   node node/bench.mjs [--quick]
// - record(): median per call, in batches with room in the trace queue;
// - resolve of the worked example (atlas `resources`, goal "Manage
//   resources"), in process;
// - the same resolve over HTTP with fetch against `python -m cra serve`
//   (.venv/bin/python), when it is there; else reported as skipped.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { Runtime } = require('./index.js');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const ATLAS = path.join(REPO, 'python', 'cra', 'conformance_cases', 'atlases', 'resources');
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
const QUICK = process.argv.includes('--quick');
const GOAL = 'Manage resources';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Median µs per call of `fn` over `rounds` batches of `batch` calls. With
 * `between` (awaited, untimed, before each batch) the batches measure the
 * call with room in the trace queue, as the Python benches do: a batch
 * bigger than the flush thread can drain would time the flush thread's
 * throughput (the queue fills and the call waits), not the call.
 */
async function bench(fn, batch, rounds, between) {
  for (let i = 0; i < batch; i++) fn(i); // warm up
  const per = [];
  for (let r = 0; r < rounds; r++) {
    if (between) await between();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn(i);
    per.push(Number(process.hrtime.bigint() - t0) / 1000 / batch);
  }
  return median(per);
}

const request = (sid, agent) => ({
  carp_version: '1.0', request_id: randomUUID(), timestamp: new Date().toISOString(),
  operation: 'resolve', requester: { agent_id: agent, session_id: sid },
  task: { goal: GOAL, risk_tier: 'low' }, atlas_ids: ['org.cra.resources'],
});

const rows = [];
const report = (name, us, goal) => {
  rows.push({ name, us, goal });
  const verdict = goal == null ? '' : us <= goal ? `  (goal <= ${goal} µs: met)` : `  (goal <= ${goal} µs: NOT met)`;
  console.log(`${name.padEnd(44)} ${us.toFixed(3).padStart(10)} µs${verdict}`);
};

async function inProcess() {
  const rt = new Runtime({ atlases: [ATLAS], memoryLimit: 100_000 });
  const sid = rt.createSession({ agentId: 'bench', goal: GOAL });
  const payload = { tool: 'search', n: 3 };
  const drain = () => rt.flush();
  report('record() median', await bench(() => rt.record(sid, 'x.bench', payload),
    QUICK ? 2_000 : 20_000, QUICK ? 5 : 25, drain), 0.5);
  const rsid = rt.createSession({ agentId: 'bench', goal: GOAL });
  const reqs = Array.from({ length: 64 }, () => request(rsid, 'bench'));
  report('resolve(request) worked example, median', await bench((i) => {
    const r = reqs[i % 64];
    r.request_id = randomUUID();
    rt.resolve(r);
  }, QUICK ? 200 : 2_000, QUICK ? 5 : 25, drain), 5);
  const prepared = rt.prepare(rsid);
  report('prepare(sid).resolve() worked example, median', await bench(
    () => prepared.resolve(GOAL, { riskTier: 'low', atlasIds: ['org.cra.resources'] }),
    QUICK ? 200 : 2_000, QUICK ? 5 : 25, drain), 5);
  await rt.close();
}

const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});

async function overHttp() {
  if (!existsSync(PYTHON)) {
    console.log(`resolve over HTTP: skipped (no ${PYTHON})`);
    return;
  }
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'cra-bench-'));
  cpSync(ATLAS, path.join(dir, 'atlases', 'resources'), { recursive: true });
  const server = spawn(PYTHON, ['-m', 'cra', 'serve', '--port', String(port), '--atlas-dir',
    path.join(dir, 'atlases'), '--store', path.join(dir, 'cra.db')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  try {
    let up = false;
    for (let i = 0; i < 200 && !up; i++) {
      try { up = (await fetch(`${base}/v1/health`)).ok; } catch { await new Promise((r) => setTimeout(r, 50)); }
    }
    if (!up) {
      console.log(`resolve over HTTP: skipped (the server did not start: ${stderr.trim().split('\n').pop()})`);
      return;
    }
    const post = async (p, body) => {
      const res = await fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const out = await res.json();
      if (!res.ok) throw new Error(`${p}: ${res.status} ${JSON.stringify(out)}`);
      return out;
    };
    const { session_id: sid } = await post('/v1/sessions', { agent_id: 'bench', goal: GOAL });
    const one = async () => post('/v1/resolve', request(sid, 'bench'));
    for (let i = 0; i < 50; i++) await one();
    const times = [];
    for (let i = 0; i < (QUICK ? 200 : 2_000); i++) {
      const t0 = process.hrtime.bigint();
      await one();
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    report('resolve over HTTP (fetch -> cra serve), median', median(times));
  } finally {
    server.kill('SIGTERM');
  }
}

console.log(`node ${process.version}, ${QUICK ? 'quick' : 'full'} run`);
await inProcess();
await overHttp();
