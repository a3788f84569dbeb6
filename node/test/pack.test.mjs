// The package `make node` packs installs offline into an empty folder,
// and `require('cra')` works there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE_DIR } from './helpers.mjs';

const { version } = JSON.parse(readFileSync(path.join(NODE_DIR, 'package.json'), 'utf8'));
const TGZ = path.join(NODE_DIR, `cra-${version}.tgz`);
const MISSING = existsSync(TGZ) ? false : `skipped: no ${path.basename(TGZ)} (run \`make node\`)`;

test('the packed tgz installs offline and require("cra") works', { skip: MISSING, timeout: 120_000 }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cra-install-'));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', TGZ],
    { cwd: dir, stdio: 'pipe' });
  const out = execFileSync(process.execPath, ['-e', `
    const cra = require('cra');
    const rt = new cra.Runtime();
    const sid = rt.createSession({ agentId: 'a', goal: 'installed' });
    rt.record(sid, 'x.ok', { ok: true });
    console.log(JSON.stringify({ version: cra.version, valid: rt.verify(sid).valid,
      error: typeof cra.CraError, from: require.resolve('cra') }));
  `], { cwd: dir, encoding: 'utf8' });
  const got = JSON.parse(out);
  assert.equal(got.version, version);
  assert.equal(got.valid, true);
  assert.equal(got.error, 'function');
  assert.ok(got.from.startsWith(path.join(dir, 'node_modules', 'cra')), got.from);
});
