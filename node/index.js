'use strict';
// cra for Node.js: the Rust core of cra as a native addon (`cra.node`,
// built by `make node`). This file loads the addon, turns its errors into
// `CraError`s and its JSON answers into objects, and runs executors (sync
// or async) between the core's execute checks and the record of their
// outcome.

const path = require('node:path');
const native = require(path.join(__dirname, 'cra.node'));

const MARKER = '\u0001cra:';

/** An error of the cra core: the same `code`, `category` and `path` as Python's. */
class CraError extends Error {
  constructor(message, { code = 'CRA_ERROR', category = 'internal', path = null,
    recoverable = false, errors = [] } = {}) {
    super(message);
    this.name = 'CraError';
    this.code = code;
    this.category = category;
    this.path = path;
    this.recoverable = recoverable;
    this.errors = errors;
  }
}

function rethrow(e) {
  if (e && typeof e.message === 'string' && e.message.startsWith(MARKER)) {
    const f = JSON.parse(e.message.slice(MARKER.length));
    throw new CraError(f.message, f);
  }
  throw e;
}

/** Calls the addon; a core error becomes a `CraError`. */
function call(fn) {
  try {
    return fn();
  } catch (e) {
    return rethrow(e);
  }
}

// A Runtime belongs to the thread that made it (its native handle cannot
// cross threads): an own function property makes postMessage refuse it
// with a DataCloneError that says so, instead of sending an empty copy.
const THREAD_BOUND = function cra_Runtime_cannot_be_posted() {
  /* A cra Runtime belongs to the thread that made it: make one in the worker instead. */
};

/** A payload as JSON text; what JSON cannot hold is a `CraError`. */
function payloadText(payload) {
  let text;
  try {
    text = JSON.stringify(payload);
  } catch (e) { // a BigInt, a cycle, a throwing toJSON
    text = e;
  }
  if (typeof text === 'string') return text;
  const why = text instanceof Error ? `the payload is not JSON: ${text.message}` : 'a payload must be an object';
  throw new CraError(why, { code: 'INVALID_PAYLOAD', category: 'validation', path: '' });
}

const json = (value) => (value === undefined ? undefined : JSON.stringify(value));

/** A clock that moves only when told to (seconds since the epoch), for tests. */
class ManualClock {
  constructor(startSeconds = Date.now() / 1000) {
    this._c = call(() => new native.NativeManualClock(startSeconds));
  }
  advance(seconds) { call(() => this._c.advance(seconds)); }
  set(seconds) { call(() => this._c.set(seconds)); }
  now() { return this._c.now(); }
}

// The keys of the protocol's resolution document.
const RESOLUTION_KEYS = ['carp_version', 'resolution_id', 'request_id', 'timestamp', 'decision',
  'context_blocks', 'allowed_actions', 'denied_actions', 'constraints', 'ttl_seconds', 'trace_id'];

/** A CARP resolution: ids and decision read directly from the core; the
 * protocol's document (`toJSON()`, and its snake_case keys as properties)
 * built on first use. */
class Resolution {
  constructor(handle) { this._r = handle; this._doc = undefined; }
  get resolutionId() { return this._r.resolutionId; }
  get requestId() { return this._r.requestId; }
  get sessionId() { return this._r.sessionId; }
  get decisionType() { return this._r.decisionType; }
  get approvalId() { return this._r.approvalId; }
  get expiresAt() { return this._r.expiresAt; }
  allowedActionIds() { return this._r.allowedActionIds(); }
  deniedActionIds() { return this._r.deniedActionIds(); }
  isAllowed(actionId) { return this._r.isAllowed(actionId); }
  /** The protocol's JSON document (a fresh copy). */
  toJSON() { return JSON.parse(this._r.toJson()); }
}
for (const key of RESOLUTION_KEYS) {
  Object.defineProperty(Resolution.prototype, key, {
    get() { if (this._doc === undefined) this._doc = this.toJSON(); return this._doc[key]; },
  });
}

class Runtime {
  /**
   * @param {object} [options] atlases, traceFile, hashAlgorithm, signingKey, ...
   */
  constructor(options = {}) {
    const { atlases = [], clock, ...rest } = options;
    if (clock !== undefined && !(clock instanceof ManualClock)) {
      throw new TypeError('clock must be a cra.ManualClock');
    }
    this._rt = call(() => new native.NativeRuntime(JSON.stringify(rest), clock?._c));
    this._executors = new Map();
    this._recordSession = undefined; // the target of `recordNext` (see record)
    this._recordType = undefined;
    this.threadBound = THREAD_BOUND;
    for (const a of atlases) this.loadAtlas(a);
  }

  get hashAlgorithm() { return this._rt.hashAlgorithm; }
  get closed() { return this._rt.closed; }

  createSession({ agentId, goal, sessionId, parentSessionId } = {}) {
    return call(() => this._rt.createSession(agentId, goal, sessionId, parentSessionId));
  }

  endSession(sessionId, reason = 'completed') {
    call(() => this._rt.endSession(sessionId, reason));
  }

  heartbeat(sessionId) { call(() => this._rt.heartbeat(sessionId)); }
  expireSessions() { return this._rt.expireSessions(); }
  getSession(sessionId) { return JSON.parse(call(() => this._rt.getSession(sessionId))); }
  listSessions(status) { return JSON.parse(call(() => this._rt.listSessions(status))); }

  /** Records a custom (`x.`-prefixed) event into a session's chain. */
  record(sessionId, eventType, payload = {}) {
    try {
      if (sessionId !== this._recordSession || eventType !== this._recordType) {
        this._recordSession = undefined;
        this._rt.recordTarget(sessionId, eventType);
        this._recordSession = sessionId;
        this._recordType = eventType;
      }
      this._rt.recordNext(payloadText(payload));
    } catch (e) {
      rethrow(e);
    }
  }

  /** Resolves once everything recorded before is written; false on timeout. */
  flush(timeoutSeconds) { return this._rt.flush(timeoutSeconds).catch(rethrow); }
  close(timeoutSeconds) { return this._rt.close(timeoutSeconds).catch(rethrow); }

  events(sessionId, { eventType, sinceSequence, limit } = {}) {
    return JSON.parse(call(() => this._rt.events(sessionId, eventType, sinceSequence, limit)));
  }

  allEvents() { return JSON.parse(this._rt.allEvents()); }
  verify(sessionId) { return JSON.parse(call(() => this._rt.verify(sessionId))); }
  exportJsonl(file, sessionId) { return call(() => this._rt.exportJsonl(file, sessionId)); }
  stats() { return JSON.parse(this._rt.stats()); }
  timestamp() { return this._rt.timestamp(); }

  /** Loads an atlas: a path (manifest file or directory) or a manifest object. */
  loadAtlas(source, { replace = false, baseDir } = {}) {
    const out = typeof source === 'string'
      ? call(() => this._rt.loadAtlasPath(source, replace))
      : call(() => this._rt.loadAtlasManifest(JSON.stringify(source), replace, baseDir));
    return JSON.parse(out);
  }

  unloadAtlas(atlasId) { call(() => this._rt.unloadAtlas(atlasId)); }
  atlases() { return JSON.parse(this._rt.atlases()); }

  /** Resolves a CARP request object into a `Resolution`. */
  resolve(request) {
    try {
      return new Resolution(this._rt.resolve(JSON.stringify(request)));
    } catch (e) {
      return rethrow(e);
    }
  }

  /** Validates a request (CARP §6): `{valid, errors: [{path, message}]}`. */
  validate(request) { return JSON.parse(call(() => this._rt.validate(JSON.stringify(request)))); }

  /** A resolver bound to one session: `prepare(sid).resolve(goal, {riskTier, atlasIds, ...})`. */
  prepare(sessionId) {
    const p = call(() => this._rt.prepare(sessionId));
    return {
      sessionId: p.sessionId,
      resolve: (goal, { riskTier, atlasIds, requiredCapabilities, contextHints } = {}) =>
        new Resolution(call(() => p.resolve(goal, riskTier, atlasIds, requiredCapabilities, contextHints))),
    };
  }

  /** Registers the executor of an action id or atlas executor name: `fn(parameters)`, sync or async. */
  registerExecutor(name, fn) {
    if (typeof fn !== 'function') throw new TypeError('an executor must be a function');
    this._executors.set(name, fn);
  }

  /** Executes a CARP execute request; resolves to the execute response. */
  async execute(request) {
    const begun = call(() => this._rt.executeBegin(JSON.stringify(request)));
    if (typeof begun === 'string') return JSON.parse(begun);
    const fn = this._executors.get(begun.actionId)
      ?? (begun.executor != null ? this._executors.get(begun.executor) : undefined);
    if (fn === undefined) return JSON.parse(call(() => begun.noExecutor()));
    let result;
    try {
      result = await fn(JSON.parse(begun.parameters));
    } catch (e) {
      const name = (e && e.constructor && e.constructor.name) || 'Error';
      const message = e instanceof Error ? e.message : String(e);
      return JSON.parse(call(() => begun.fail(name, message)));
    }
    let text;
    try {
      text = json(result);
    } catch (e) {
      return JSON.parse(call(() => begun.fail('TypeError', `the result is not JSON: ${e.message}`)));
    }
    return JSON.parse(call(() => begun.finish(text)));
  }

  approve(approvalId, approver, { note, actionId, parametersHash, scope = 'once' } = {}) {
    return JSON.parse(call(() => this._rt.approve(approvalId, approver, note, actionId, parametersHash, scope)));
  }

  reject(approvalId, approver, { note } = {}) {
    return JSON.parse(call(() => this._rt.reject(approvalId, approver, note)));
  }

  pendingApprovals(sessionId) { return JSON.parse(call(() => this._rt.pendingApprovals(sessionId))); }
}

/** Verifies a `.trace.jsonl` file off the JS thread; resolves to its report. */
async function verifyJsonl(file, { useSidecar = true } = {}) {
  try {
    return JSON.parse(await native.verifyJsonl(file, useSidecar));
  } catch (e) {
    return rethrow(e);
  }
}

// Events may be given as JSON text, which keeps numbers JS cannot hold
// (2.0, integers past 2^53) exactly as written.
const text = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

/** Verifies one chain given as events (objects or JSON texts), in order. */
function verifyChain(events) {
  return JSON.parse(call(() => native.verifyChain(events.map(text))));
}

/** The TRACE/1.0 hash of an event (object or JSON text) under `algorithm` (`sha256` or `blake3`). */
function eventHash(algorithm, event) {
  return call(() => native.eventHash(algorithm, text(event)));
}

/** The faults of a CARP request, `[{path, message}]`; empty when valid. */
function checkRequest(request) {
  return JSON.parse(native.checkRequest(JSON.stringify(request)));
}

module.exports = {
  CraError, Runtime, Resolution, ManualClock, verifyJsonl, verifyChain, eventHash, checkRequest,
  version: native.version(),
};
