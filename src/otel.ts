/**
 * OpenTelemetry traces without the OpenTelemetry SDK: W3C Trace Context propagation,
 * parent-based sampling, spans, and batched export as OTLP/HTTP JSON.
 *
 * Loaded only through `await import("./otel.ts")` when OTEL_EXPORTER_OTLP_ENDPOINT is
 * set; the gateway holds `Tracer | undefined` and skips every tracing call without it.
 *
 * Why not @opentelemetry/*: a tracer plus OTLP/HTTP exporter is sdk-trace-base, core,
 * resources, semantic-conventions, exporter-trace-otlp-http, otlp-exporter-base and
 * otlp-transformer (which pulls sdk-logs and sdk-metrics); the exporter's Node transport
 * uses node:http/https/zlib, its browser one XHR/sendBeacon. We need ~300 lines of it.
 *
 * Export never throws into the request path: a full queue drops spans (counted), a
 * failed POST drops that batch and is logged at most once a minute.
 */
import type { Logger } from "./logging.ts";
import { Version } from "./version.ts";

/** Trace context of a span, as carried by `traceparent` / `tracestate`. */
export interface SpanContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero. */
  spanId: string;
  sampled: boolean;
  /** The incoming `tracestate`, passed on unchanged. */
  traceState?: string;
}

export type AttributeValue = string | number | boolean;
export type Attributes = Record<string, AttributeValue | undefined>;
export type SpanKind = "internal" | "server" | "client";

export interface Span {
  readonly context: SpanContext;
  /** False for a span that is not sampled: its setters do nothing. */
  readonly recording: boolean;
  setAttribute(key: string, value: AttributeValue | undefined): this;
  setAttributes(attrs: Attributes): this;
  /** "error" marks the span failed; "ok" only when the outcome is known good. */
  setStatus(code: "ok" | "error", message?: string): this;
  /** Ends the span (once; later calls are ignored) and queues it for export. */
  end(): void;
}

export interface StartSpanOptions {
  /** The parent: a span of ours, or a context parsed from the client's headers. */
  parent?: Span | SpanContext | undefined;
  kind?: SpanKind;
  attributes?: Attributes;
}

export interface Tracer {
  startSpan(name: string, opts?: StartSpanOptions): Span;
  /** The context of the client's `traceparent` (and `tracestate`), if valid. */
  extract(headers: Headers): SpanContext | undefined;
  /** Sets `traceparent` (and `tracestate`, if any) for a request made on behalf of `span`. */
  inject(span: Span, headers: Pick<Headers, "set" | "delete">): void;
  /** The `traceparent` value for `span`. */
  traceparentFor(span: Span): string;
  /** Exports what is queued now. Never rejects. */
  flush(): Promise<void>;
  /** Stops the timer and exports what is queued. Never rejects. */
  shutdown(): Promise<void>;
  /** Spans dropped because the queue was full or an export failed. */
  readonly dropped: number;
}

export interface TracerConfig {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: spans go to `{endpoint}/v1/traces`. */
  endpoint: string;
  serviceName: string;
  /** Fraction of new traces sampled (0..1); a client's `traceparent` decides for its own. */
  sampleRate: number;
  /** Extra request headers for the collector (e.g. an API key). */
  headers?: Record<string, string>;
  /** Delay before a partial batch is sent (default 5000 ms). */
  flushIntervalMs?: number;
  /** Spans per POST (default 512); a full batch is sent at once. */
  maxBatch?: number;
  /** Ended spans held at most (default 2048); more are dropped. */
  maxQueue?: number;
  /** Time allowed for one export (default 10000 ms). */
  exportTimeoutMs?: number;
}

export interface TracerDeps {
  fetch: typeof fetch;
  log: Logger;
  /** Milliseconds since the epoch, with fractions (default performance.timeOrigin + performance.now()). */
  now?: () => number;
  /** A number in [0, 1) (default Math.random). */
  random?: () => number;
}

// ---------------------------------------------------------------------------------------
// W3C Trace Context (https://www.w3.org/TR/trace-context/#traceparent-header)

const Hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const TraceparentV00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** A later version: the same four fields; anything after them must start with "-". */
const TraceparentFuture = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZeroTrace = "0".repeat(32);
const ZeroSpan = "0".repeat(16);
const TraceStateMax = 512;

/**
 * Parses a `traceparent` value. Returns undefined for anything the spec says to ignore:
 * wrong length or layout, uppercase hex, version ff, version 00 with extra fields, an
 * all-zero trace id or parent id.
 */
export function parseTraceparent(value: string | null | undefined): SpanContext | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  let traceId: string, spanId: string, flags: string;
  const m00 = TraceparentV00.exec(v);
  if (m00) {
    [, traceId, spanId, flags] = m00 as unknown as [string, string, string, string];
  } else {
    const m = TraceparentFuture.exec(v);
    if (!m || m[1] === "00" || m[1] === "ff") return undefined;
    [, , traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  }
  if (traceId === ZeroTrace || spanId === ZeroSpan) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** `00-{trace-id}-{span-id}-{flags}`. */
export function formatTraceparent(ctx: SpanContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? "01" : "00"}`;
}

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (let i = 0; i < bytes; i++) s += Hex[buf[i]!];
  return s;
}

/** A random id that is not all zeros. */
function newId(bytes: 8 | 16): string {
  for (;;) {
    const id = randomHex(bytes);
    if (!/^0+$/.test(id)) return id;
  }
}

// ---------------------------------------------------------------------------------------
// OTLP/HTTP JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding)

type OtlpValue = { stringValue: string } | { boolValue: boolean } | { intValue: string } | {
  doubleValue: number;
};
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: OtlpValue }[];
  status: { code: number; message?: string };
  flags: number;
}

const KindCode: Record<SpanKind, number> = { internal: 1, server: 2, client: 3 };
const StatusCode = { unset: 0, ok: 1, error: 2 } as const;

function otlpValue(v: AttributeValue): OtlpValue {
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  return Number.isSafeInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

/** Milliseconds (with fractions) → decimal nanoseconds, without losing precision to floats. */
function nanos(ms: number): string {
  const whole = Math.floor(ms);
  const frac = Math.round((ms - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(frac)).toString();
}

/** `{endpoint}/v1/traces`, as the OTel spec builds it from OTEL_EXPORTER_OTLP_ENDPOINT. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, "")}/v1/traces`;
}

// ---------------------------------------------------------------------------------------

class RecordingSpan implements Span {
  readonly context: SpanContext;
  readonly recording = true;
  readonly #name: string;
  readonly #kind: SpanKind;
  readonly #parentSpanId: string | undefined;
  readonly #start: number;
  readonly #attrs = new Map<string, AttributeValue>();
  #status: { code: number; message?: string } = { code: StatusCode.unset };
  #ended = false;
  readonly #tracer: TracerImpl;

  constructor(
    tracer: TracerImpl,
    name: string,
    context: SpanContext,
    parentSpanId: string | undefined,
    kind: SpanKind,
    attrs: Attributes | undefined,
  ) {
    this.#tracer = tracer;
    this.#name = name;
    this.context = context;
    this.#parentSpanId = parentSpanId;
    this.#kind = kind;
    this.#start = tracer.now();
    if (attrs) this.setAttributes(attrs);
  }

  setAttribute(key: string, value: AttributeValue | undefined): this {
    if (value !== undefined && !this.#ended) this.#attrs.set(key, value);
    return this;
  }
  setAttributes(attrs: Attributes): this {
    for (const k in attrs) this.setAttribute(k, attrs[k]);
    return this;
  }
  setStatus(code: "ok" | "error", message?: string): this {
    if (this.#ended) return this;
    // An error is sticky: a later "ok" does not hide it.
    if (this.#status.code === StatusCode.error && code === "ok") return this;
    this.#status = code === "error" && message !== undefined
      ? { code: StatusCode.error, message }
      : { code: StatusCode[code] };
    return this;
  }
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const attributes: OtlpSpan["attributes"] = [];
    for (const [key, v] of this.#attrs) attributes.push({ key, value: otlpValue(v) });
    const span: OtlpSpan = {
      traceId: this.context.traceId,
      spanId: this.context.spanId,
      name: this.#name,
      kind: KindCode[this.#kind],
      startTimeUnixNano: nanos(this.#start),
      endTimeUnixNano: nanos(this.#tracer.now()),
      attributes,
      status: this.#status,
      flags: 1,
    };
    if (this.#parentSpanId !== undefined) span.parentSpanId = this.#parentSpanId;
    if (this.context.traceState !== undefined) span.traceState = this.context.traceState;
    this.#tracer.enqueue(span);
  }
}

class NonRecordingSpan implements Span {
  readonly recording = false;
  constructor(readonly context: SpanContext) {}
  setAttribute(): this {
    return this;
  }
  setAttributes(): this {
    return this;
  }
  setStatus(): this {
    return this;
  }
  end(): void {}
}

class TracerImpl implements Tracer {
  readonly now: () => number;
  readonly #cfg: Required<Omit<TracerConfig, "headers">> & { headers: Record<string, string> };
  readonly #deps: TracerDeps;
  readonly #random: () => number;
  readonly #url: string;
  readonly #resource: { attributes: { key: string; value: OtlpValue }[] };
  #queue: OtlpSpan[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #exporting: Promise<void> | undefined;
  #dropped = 0;
  #lastWarn = Number.NEGATIVE_INFINITY;
  #closed = false;

  constructor(cfg: TracerConfig, deps: TracerDeps) {
    this.#cfg = {
      endpoint: cfg.endpoint,
      serviceName: cfg.serviceName,
      sampleRate: Math.min(1, Math.max(0, cfg.sampleRate)),
      headers: cfg.headers ?? {},
      flushIntervalMs: cfg.flushIntervalMs ?? 5000,
      maxBatch: Math.max(1, cfg.maxBatch ?? 512),
      maxQueue: Math.max(1, cfg.maxQueue ?? 2048),
      exportTimeoutMs: cfg.exportTimeoutMs ?? 10_000,
    };
    this.#deps = deps;
    this.now = deps.now ?? (() => performance.timeOrigin + performance.now());
    this.#random = deps.random ?? Math.random;
    this.#url = tracesUrl(cfg.endpoint);
    this.#resource = {
      attributes: [
        { key: "service.name", value: { stringValue: cfg.serviceName } },
        { key: "service.version", value: { stringValue: Version } },
        { key: "telemetry.sdk.name", value: { stringValue: "mcp-gate" } },
        { key: "telemetry.sdk.language", value: { stringValue: "webjs" } },
      ],
    };
  }

  get dropped(): number {
    return this.#dropped;
  }

  startSpan(name: string, opts: StartSpanOptions = {}): Span {
    const parent = opts.parent === undefined ? undefined : "context" in opts.parent ? opts.parent.context : opts.parent;
    let sampled: boolean;
    let traceId: string;
    if (parent) {
      sampled = parent.sampled;
      traceId = parent.traceId;
    } else {
      const rate = this.#cfg.sampleRate;
      sampled = rate >= 1 ? true : rate <= 0 ? false : this.#random() < rate;
      traceId = newId(16);
    }
    const context: SpanContext = { traceId, spanId: newId(8), sampled };
    if (parent?.traceState !== undefined) context.traceState = parent.traceState;
    if (!sampled || this.#closed) return new NonRecordingSpan(context);
    return new RecordingSpan(this, name, context, parent?.spanId, opts.kind ?? "internal", opts.attributes);
  }

  extract(headers: Headers): SpanContext | undefined {
    const ctx = parseTraceparent(headers.get("traceparent"));
    if (!ctx) return undefined;
    const state = headers.get("tracestate");
    if (state !== null && state.length > 0 && state.length <= TraceStateMax) ctx.traceState = state;
    return ctx;
  }

  inject(span: Span, headers: Pick<Headers, "set" | "delete">): void {
    headers.set("traceparent", formatTraceparent(span.context));
    if (span.context.traceState !== undefined) headers.set("tracestate", span.context.traceState);
    else headers.delete("tracestate");
  }

  traceparentFor(span: Span): string {
    return formatTraceparent(span.context);
  }

  enqueue(span: OtlpSpan): void {
    if (this.#queue.length >= this.#cfg.maxQueue) {
      this.#dropped++;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#cfg.maxBatch) {
      if (!this.#exporting) this.#exporting = this.#drain();
    } else if (this.#timer === undefined && !this.#closed) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.#cfg.flushIntervalMs);
    }
  }

  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (!this.#exporting) this.#exporting = this.#drain();
    return this.#exporting;
  }

  async shutdown(): Promise<void> {
    this.#closed = true;
    await this.#exporting;
    await this.flush();
  }

  /** Sends batches until the queue is empty; one export in flight at a time. */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#cfg.maxBatch);
        await this.#send(batch);
      }
    } finally {
      this.#exporting = undefined;
    }
  }

  async #send(spans: OtlpSpan[]): Promise<void> {
    const body = JSON.stringify({
      resourceSpans: [{
        resource: this.#resource,
        scopeSpans: [{ scope: { name: "mcp-gate", version: Version }, spans }],
      }],
    });
    try {
      const res = await this.#deps.fetch(this.#url, {
        method: "POST",
        headers: { "content-type": "application/json", ...this.#cfg.headers },
        body,
        signal: AbortSignal.timeout(this.#cfg.exportTimeoutMs),
      });
      await res.body?.cancel().catch(() => {});
      if (res.status < 200 || res.status >= 300) throw new Error(`the collector answered HTTP ${res.status}`);
    } catch (e) {
      this.#dropped += spans.length;
      const now = this.now();
      if (now - this.#lastWarn >= 60_000) {
        this.#lastWarn = now;
        this.#deps.log.warn("trace export failed; spans dropped", {
          endpoint: this.#url,
          error: e instanceof Error ? e.message : String(e),
          dropped_total: this.#dropped,
        });
      }
    }
  }
}

/** Creates a tracer exporting to `{cfg.endpoint}/v1/traces`. */
export function createTracer(cfg: TracerConfig, deps: TracerDeps): Tracer {
  return new TracerImpl(cfg, deps);
}
