// Types of the `cra` package (hand-written; node/index.js is the source).
// Protocol documents (requests, resolutions, execute responses, events)
// keep the protocol's snake_case keys; the binding's own reports use camelCase.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Category =
  | 'validation' | 'authentication' | 'authorization' | 'not_found' | 'conflict'
  | 'expired' | 'integrity' | 'approval_required' | 'rate_limited' | 'internal'
  | 'upstream' | 'unavailable';

export interface Fault { path: string; message: string }

/** An error of the cra core: the same `code`, `category` and `path` as Python's exceptions. */
export class CraError extends Error {
  constructor(message: string, fields?: {
    code?: string; category?: Category | string; path?: string | null;
    recoverable?: boolean; errors?: Fault[];
  });
  readonly name: 'CraError';
  /** The protocol's error code, e.g. `INVALID_REQUEST`, `SESSION_NOT_FOUND`. */
  code: string;
  category: Category | string;
  /** JSON pointer of the offending value, when there is one. */
  path: string | null;
  recoverable: boolean;
  /** Every fault found, for a document with several. */
  errors: Fault[];
}

export interface RuntimeOptions {
  /** Atlases to load: paths (manifest file or directory) or manifest objects. */
  atlases?: Array<string | JsonObject>;
  /** A `.trace.jsonl` file every event is appended to. */
  traceFile?: string;
  hashAlgorithm?: 'sha256' | 'blake3';
  /** An Ed25519 PKCS#8 PEM key: signed checkpoints go into the trace. */
  signingKey?: string;
  checkpointEvents?: number;
  checkpointSeconds?: number | null;
  queueCapacity?: number;
  overflow?: 'block' | 'drop';
  memoryLimit?: number;
  /** Largest accepted request clock skew; `null` disables the check. */
  clockSkewSeconds?: number | null;
  maxResolutions?: number;
  durability?: 'async' | 'sync';
  /** End sessions idle this long / older than this (`session.ended`, reason `expired`). */
  sessionIdleSeconds?: number;
  sessionMaxSeconds?: number;
  /** End sessions whose agent misses more than `heartbeatMissesAllowed` (default 2) heartbeats. */
  heartbeatIntervalSeconds?: number;
  heartbeatMissesAllowed?: number;
  /** The runtime's clock (default: the system clock). */
  clock?: ManualClock;
}

/** A clock that moves only when told to (seconds since the epoch), for tests. */
export class ManualClock {
  constructor(startSeconds?: number);
  advance(seconds: number): void;
  set(seconds: number): void;
  now(): number;
}

export interface TraceEvent {
  trace_version: '1.0';
  event_id: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  session_id: string;
  sequence: number;
  timestamp: string;
  event_type: string;
  payload: JsonObject;
  event_hash: string;
  previous_event_hash: string;
}

export interface SessionInfo {
  sessionId: string; traceId: string; rootSpanId: string; agentId: string; goal: string;
  parentSessionId: string | null; status: 'active' | 'ended';
  createdAt: string; endedAt: string | null; endReason: string | null;
}

export interface ChainReport {
  valid: boolean;
  error: string | null;
  index: number | null;
  line: number | null;
  message: string | null;
  eventCount: number;
  algorithm: 'sha256' | 'blake3' | null;
  sessionId: string | null;
  anchoredAt: number | null;
}

export interface FileReport {
  valid: boolean;
  sessions: ChainReport[];
  eventCount: number;
  lines: number;
  bytes: number;
  badLineCount: number;
  badLines: Array<{ line: number; message: string }>;
  tornLineCount: number;
  tornTail: boolean;
  anchorFile: string | null;
  anchorFaults: string[];
  keyId: string | null;
}

export interface AtlasInfo {
  atlasId: string; version: string; name: string; description: string | null;
  actions: string[]; policies: string[]; capabilities: string[]; contextPacks: string[];
  defaultTtlSeconds: number;
}

export interface Stats {
  recorded: number; sealed: number; written: number; dropped: number; queueDepth: number;
  highWaterMark: number; sinkErrors: number; memoryEvents: number; evictedEvents: number;
  evictedSessions: number; sessions: number;
}

/** A CARP/1.0 request (resolve or execute). */
export interface CarpRequest extends JsonObject {}

/** A CARP/1.0 resolution document, as the protocol's JSON. */
export interface ResolutionDocument extends JsonObject {
  resolution_id: string;
  request_id: string;
  decision: { type: 'allow' | 'partial' | 'deny' | 'requires_approval'; reason: string | null;
    approval_id: string | null; expires_at: string } & JsonObject;
  allowed_actions: JsonObject[];
  denied_actions: JsonObject[];
}

/** A resolution: ids and decision read from the core; the protocol's
 * document built on first use of one of its snake_case keys or `toJSON()`. */
export class Resolution {
  private constructor();
  readonly resolutionId: string;
  readonly requestId: string;
  readonly sessionId: string;
  readonly decisionType: 'allow' | 'partial' | 'deny' | 'requires_approval';
  readonly approvalId: string | null;
  readonly expiresAt: string;
  allowedActionIds(): string[];
  deniedActionIds(): string[];
  isAllowed(actionId: string): boolean;
  /** The protocol's JSON document (a fresh copy). */
  toJSON(): ResolutionDocument;
  readonly carp_version: string;
  readonly resolution_id: string;
  readonly request_id: string;
  readonly timestamp: string;
  readonly decision: ResolutionDocument['decision'];
  readonly context_blocks: JsonObject[];
  readonly allowed_actions: JsonObject[];
  readonly denied_actions: JsonObject[];
  readonly constraints: Json;
  readonly ttl_seconds: number;
  readonly trace_id: string;
}

export interface PreparedResolver {
  readonly sessionId: string;
  resolve(goal: string, options?: {
    riskTier?: 'low' | 'medium' | 'high' | 'critical'; atlasIds?: string[];
    requiredCapabilities?: string[]; contextHints?: string[];
  }): Resolution;
}

/** A CARP/1.0 execute response, as the protocol's JSON. */
export interface ExecuteResponse extends JsonObject {
  execution_id: string;
  request_id: string;
  resolution_id: string;
  status: 'success' | 'error' | 'denied' | 'pending_approval' | string;
  result: Json;
  error: { code: string; message: string; details: Json } | null;
  trace_id: string;
}

export interface Decision {
  approvalId: string; sessionId: string; resolutionId: string; actionId: string | null;
  parametersHash: string | null; scope: 'once' | 'resolution' | string; approver: string;
  note: string | null; granted: boolean;
}

export interface PendingApproval {
  approvalId: string; sessionId: string; resolutionId: string; actionId: string;
  parametersHash: string; parameters: JsonObject; requestedAt: string;
}

/** An executor: called with the checked parameters; may return a promise. */
export type Executor = (parameters: JsonObject) => Json | undefined | Promise<Json | undefined>;

export class Runtime {
  constructor(options?: RuntimeOptions);
  readonly hashAlgorithm: 'sha256' | 'blake3';
  readonly closed: boolean;
  /** Makes `postMessage` refuse a Runtime (it belongs to the thread that made it). */
  readonly threadBound: () => void;

  createSession(options: { agentId: string; goal: string; sessionId?: string; parentSessionId?: string }): string;
  endSession(sessionId: string, reason?: string): void;
  /** Records that a session's agent is alive (see the heartbeat options). */
  heartbeat(sessionId: string): void;
  /** Ends every session past its lifetime; their ids. */
  expireSessions(): string[];
  getSession(sessionId: string): SessionInfo;
  listSessions(status?: 'active' | 'ended'): SessionInfo[];
  /** Records a custom (`x.`-prefixed) event into a session's chain. */
  record(sessionId: string, eventType: string, payload?: JsonObject): void;
  /** Resolves once everything recorded before is written (false on timeout); waits off the JS thread. */
  flush(timeoutSeconds?: number): Promise<boolean>;
  /** Flushes, then stops the recorder; later records are refused. */
  close(timeoutSeconds?: number): Promise<boolean>;
  events(sessionId: string, query?: { eventType?: string; sinceSequence?: number; limit?: number }): TraceEvent[];
  allEvents(): TraceEvent[];
  verify(sessionId: string): ChainReport;
  /** Writes events (one session or all) to a `.trace.jsonl` file atomically; the count. */
  exportJsonl(file: string, sessionId?: string): number;
  stats(): Stats;
  /** The runtime clock's reading as an RFC 3339 timestamp. */
  timestamp(): string;

  loadAtlas(source: string | JsonObject, options?: { replace?: boolean; baseDir?: string }): AtlasInfo;
  unloadAtlas(atlasId: string): void;
  atlases(): AtlasInfo[];
  resolve(request: CarpRequest): Resolution;
  /** Validates a request (CARP §6). */
  validate(request: CarpRequest): { valid: boolean; errors: Fault[] };
  /** A resolver bound to one session, the least work per call. */
  prepare(sessionId: string): PreparedResolver;

  /** Registers the executor of an action id or of an atlas executor name. */
  registerExecutor(name: string, fn: Executor): void;
  /** Runs the checks, awaits the executor on the event loop, records the outcome. */
  execute(request: CarpRequest): Promise<ExecuteResponse>;
  approve(approvalId: string, approver: string, options?: {
    note?: string; actionId?: string; parametersHash?: string; scope?: 'once' | 'resolution';
  }): Decision;
  reject(approvalId: string, approver: string, options?: { note?: string }): Decision;
  pendingApprovals(sessionId?: string): PendingApproval[];
}

/** Verifies a `.trace.jsonl` file off the JS thread. */
export function verifyJsonl(file: string, options?: { useSidecar?: boolean }): Promise<FileReport>;
/** Verifies one chain given as events (objects or JSON texts), in order. */
export function verifyChain(events: Array<TraceEvent | JsonObject | string>): ChainReport;
/** The TRACE/1.0 hash of an event (object or JSON text). */
export function eventHash(algorithm: 'sha256' | 'blake3', event: JsonObject | string): string;
/** The faults of a CARP request; empty when valid. */
export function checkRequest(request: CarpRequest): Fault[];
/** The package version (that of the Rust crate). */
export const version: string;
