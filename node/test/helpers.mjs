// Shared by the tests: the package under test, the repository's paths,
// CARP request builders and the conformance matcher.
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const cra = require('../index.js');

export const NODE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(NODE_DIR, '..');
export const CASES = path.join(REPO, 'python', 'cra', 'conformance_cases');
export const RESOURCES = path.join(CASES, 'atlases', 'resources');
export const PYTHON = path.join(REPO, '.venv', 'bin', 'python');
export const hasPython = existsSync(PYTHON);

export function resolveRequest(rt, sessionId, goal, extra = {}) {
  return {
    carp_version: '1.0',
    request_id: randomUUID(),
    timestamp: rt.timestamp(),
    operation: 'resolve',
    requester: { agent_id: 'node-agent', session_id: sessionId },
    task: { goal },
    ...extra,
  };
}

export function executeRequest(rt, sessionId, agentId, goal, resolutionId, actionId,
  parameters = {}, { idempotencyKey, requestId } = {}) {
  const execution = { resolution_id: resolutionId, action_id: actionId, parameters };
  if (idempotencyKey != null) execution.idempotency_key = idempotencyKey;
  return {
    carp_version: '1.0',
    request_id: requestId ?? randomUUID(),
    timestamp: rt.timestamp(),
    operation: 'execute',
    requester: { agent_id: agentId, session_id: sessionId },
    task: { goal },
    execution,
  };
}

export const DYNAMIC = '$dynamic';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Python's `cra.conformance.match`: `"$dynamic"` matches anything; objects
 * match on the expected keys (all keys when `exact`), arrays item by item. */
export function match(actual, expected, where = '', exact = false) {
  if (expected === DYNAMIC) return;
  const at = where || '/';
  if (isObject(expected)) {
    if (!isObject(actual)) throw new Error(`${at}: expected an object, got ${JSON.stringify(actual)}`);
    if (exact) {
      const a = Object.keys(actual).sort().join(','), e = Object.keys(expected).sort().join(',');
      if (a !== e) throw new Error(`${at}: keys differ: got [${a}], expected [${e}]`);
    }
    for (const [k, v] of Object.entries(expected)) {
      if (!(k in actual)) throw new Error(`${where}/${k}: missing`);
      match(actual[k], v, `${where}/${k}`, exact);
    }
  } else if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      throw new Error(`${at}: expected ${expected.length} items, got ${JSON.stringify(actual)}`);
    }
    expected.forEach((e, i) => match(actual[i], e, `${where}/${i}`, exact));
  } else if (actual !== expected) {
    throw new Error(`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

export function substitute(value, names) {
  if (typeof value === 'string' && Object.hasOwn(names, value)) return names[value];
  if (Array.isArray(value)) return value.map((v) => substitute(v, names));
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, names)]));
  }
  return value;
}

/** camelCase keys to snake_case (the JS API's decisions and approvals
 * against the cases, written with Python's keys). */
export function snake(value) {
  if (Array.isArray(value)) return value.map(snake);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(
    ([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), k === 'parameters' ? v : snake(v)]));
}

/** The source text of every value of a JSON document, as a tree: an
 * object node maps keys to nodes, an array node lists them; each node has
 * `raw`. (JSON.parse loses 2.0 and integers past 2^53; the trace vectors
 * hold both, and their hashes cover the text as written.) */
export function rawTree(src) {
  let i = 0;
  const ws = () => { while (' \t\n\r'.includes(src[i])) i++; };
  const str = () => {
    const start = i++;
    while (src[i] !== '"') i += src[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(src.slice(start, i));
  };
  const value = () => {
    ws();
    const start = i;
    let node;
    if (src[i] === '{') {
      node = { keys: {} };
      i++; ws();
      while (src[i] !== '}') {
        ws(); const k = str(); ws(); i++; // ':'
        node.keys[k] = value(); ws();
        if (src[i] === ',') i++;
        ws();
      }
      i++;
    } else if (src[i] === '[') {
      node = { items: [] };
      i++; ws();
      while (src[i] !== ']') {
        node.items.push(value()); ws();
        if (src[i] === ',') i++;
        ws();
      }
      i++;
    } else if (src[i] === '"') {
      str(); node = {};
    } else {
      while (i < src.length && !',]} \t\n\r'.includes(src[i])) i++;
      node = {};
    }
    node.raw = src.slice(start, i);
    return node;
  };
  return value();
}
