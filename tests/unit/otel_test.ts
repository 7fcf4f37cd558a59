import { assert, assertEquals, assertExists, assertFalse, assertMatch, assertNotEquals } from "@std/assert";
import {
  createTracer,
  formatTraceparent,
  parseTraceparent,
  type SpanContext,
  type TracerConfig,
  tracesUrl,
} from "../../src/otel.ts";
import { createLogger, silentLogger } from "../../src/logging.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

Deno.test("parseTraceparent() follows W3C Trace Context", async (t) => {
  const cases: { description: string; input: string | null; expected: SpanContext | undefined }[] = [
    {
      description: "version 00, sampled",
      input: `00-${TRACE}-${PARENT}-01`,
      expected: { traceId: TRACE, spanId: PARENT, sampled: true },
    },
    {
      description: "version 00, not sampled",
      input: `00-${TRACE}-${PARENT}-00`,
      expected: { traceId: TRACE, spanId: PARENT, sampled: false },
    },
    {
      description: "other flag bits are ignored (03: sampled)",
      input: `00-${TRACE}-${PARENT}-03`,
      expected: { traceId: TRACE, spanId: PARENT, sampled: true },
    },
    {
      description: "other flag bits are ignored (02: not sampled)",
      input: `00-${TRACE}-${PARENT}-02`,
      expected: { traceId: TRACE, spanId: PARENT, sampled: false },
    },
    {
      description: "a future version is parsed by its first four fields",
      input: `cc-${TRACE}-${PARENT}-01-future-stuff`,
      expected: { traceId: TRACE, spanId: PARENT, sampled: true },
    },
    {
      description: "a future version of exactly 55 characters",
      input: `01-${TRACE}-${PARENT}-00`,
      expected: { traceId: TRACE, spanId: PARENT, sampled: false },
    },
    { description: "null", input: null, expected: undefined },
    { description: "empty", input: "", expected: undefined },
    { description: "version ff is invalid", input: `ff-${TRACE}-${PARENT}-01`, expected: undefined },
    { description: "version 00 with extra fields", input: `00-${TRACE}-${PARENT}-01-extra`, expected: undefined },
    { description: "future version, extra without a dash", input: `cc-${TRACE}-${PARENT}-01x`, expected: undefined },
    { description: "uppercase trace id", input: `00-${TRACE.toUpperCase()}-${PARENT}-01`, expected: undefined },
    { description: "uppercase parent id", input: `00-${TRACE}-00F067AA0BA902B7-01`, expected: undefined },
    { description: "uppercase version", input: `0A-${TRACE}-${PARENT}-01`, expected: undefined },
    { description: "uppercase flags", input: `00-${TRACE}-${PARENT}-0A`, expected: undefined },
    { description: "all-zero trace id", input: `00-${"0".repeat(32)}-${PARENT}-01`, expected: undefined },
    { description: "all-zero parent id", input: `00-${TRACE}-${"0".repeat(16)}-01`, expected: undefined },
    { description: "short trace id", input: `00-${TRACE.slice(1)}-${PARENT}-01`, expected: undefined },
    { description: "long parent id", input: `00-${TRACE}-${PARENT}0-01`, expected: undefined },
    { description: "one-digit flags", input: `00-${TRACE}-${PARENT}-1`, expected: undefined },
    { description: "not hex", input: `00-${TRACE.replace("4", "g")}-${PARENT}-01`, expected: undefined },
    { description: "wrong separator", input: `00_${TRACE}_${PARENT}_01`, expected: undefined },
    { description: "space inside", input: `00-${TRACE} -${PARENT}-01`, expected: undefined },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(parseTraceparent(input), expected));
  }
});

Deno.test("formatTraceparent() writes version 00 with the sampled flag", () => {
  assertEquals(formatTraceparent({ traceId: TRACE, spanId: PARENT, sampled: true }), `00-${TRACE}-${PARENT}-01`);
  assertEquals(formatTraceparent({ traceId: TRACE, spanId: PARENT, sampled: false }), `00-${TRACE}-${PARENT}-00`);
});

Deno.test("tracesUrl() appends /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  assertEquals(tracesUrl("http://collector:4318"), "http://collector:4318/v1/traces");
  assertEquals(tracesUrl("http://collector:4318/"), "http://collector:4318/v1/traces");
  assertEquals(tracesUrl("https://otlp.example.com/otlp"), "https://otlp.example.com/otlp/v1/traces");
});

function noFetch(): typeof fetch {
  return () => Promise.reject(new Error("no network in this test"));
}

function config(extra: Partial<TracerConfig> = {}): TracerConfig {
  return { endpoint: "http://collector.invalid:4318", serviceName: "mcp-gate", sampleRate: 1, ...extra };
}

Deno.test("Tracer sampling is parent-based, else OTEL_TRACE_SAMPLE_RATE", async (t) => {
  const sampledParent: SpanContext = { traceId: TRACE, spanId: PARENT, sampled: true };
  const unsampledParent: SpanContext = { traceId: TRACE, spanId: PARENT, sampled: false };
  await t.step("rate 0: new traces are not recorded, a sampled parent still is", async () => {
    const tracer = createTracer(config({ sampleRate: 0 }), { fetch: noFetch(), log: silentLogger });
    const root = tracer.startSpan("root");
    assertFalse(root.recording);
    assertFalse(root.context.sampled);
    assertMatch(tracer.traceparentFor(root), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    const child = tracer.startSpan("child", { parent: sampledParent });
    assert(child.recording);
    assertEquals(child.context.traceId, TRACE);
    await tracer.shutdown();
  });
  await t.step("rate 1: new traces are recorded, an unsampled parent is not", async () => {
    const tracer = createTracer(config({ sampleRate: 1 }), { fetch: noFetch(), log: silentLogger });
    assert(tracer.startSpan("root").recording);
    const child = tracer.startSpan("child", { parent: unsampledParent });
    assertFalse(child.recording);
    // The trace continues unsampled, with a new span id.
    assertEquals(child.context.traceId, TRACE);
    assertNotEquals(child.context.spanId, PARENT);
    assertEquals(tracer.traceparentFor(child).slice(-3), "-00");
    await tracer.shutdown();
  });
  await t.step("rate 0.25: decided by the random draw", async () => {
    const draws = [0.1, 0.3, 0.2499, 0.25];
    const tracer = createTracer(config({ sampleRate: 0.25 }), {
      fetch: noFetch(),
      log: silentLogger,
      random: () => draws.shift()!,
    });
    assertEquals([1, 2, 3, 4].map(() => tracer.startSpan("r").recording), [true, false, true, false]);
    await tracer.shutdown();
  });
  await t.step("children of our own spans share the trace and sampling", async () => {
    const tracer = createTracer(config(), { fetch: noFetch(), log: silentLogger });
    const root = tracer.startSpan("root");
    const child = tracer.startSpan("child", { parent: root });
    assertEquals(child.context.traceId, root.context.traceId);
    assertNotEquals(child.context.spanId, root.context.spanId);
    assertMatch(root.context.traceId, /^[0-9a-f]{32}$/);
    assertMatch(root.context.spanId, /^[0-9a-f]{16}$/);
    await tracer.shutdown();
  });
});

Deno.test("Tracer.extract() and inject() carry traceparent and tracestate", async () => {
  const tracer = createTracer(config(), { fetch: noFetch(), log: silentLogger });
  const incoming = new Headers({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: "vendor=abc" });
  const ctx = tracer.extract(incoming);
  assertEquals(ctx, { traceId: TRACE, spanId: PARENT, sampled: true, traceState: "vendor=abc" });
  assertEquals(tracer.extract(new Headers({ traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01` })), undefined);
  const span = tracer.startSpan("upstream", { parent: ctx, kind: "client" });
  const out = new Headers({ traceparent: "stale", tracestate: "stale" });
  tracer.inject(span, out);
  assertEquals(out.get("traceparent"), `00-${TRACE}-${span.context.spanId}-01`);
  assertEquals(out.get("tracestate"), "vendor=abc");
  const fresh = tracer.startSpan("root");
  tracer.inject(fresh, out);
  assertEquals(out.get("tracestate"), null);
  await tracer.shutdown();
});

interface Received {
  path: string;
  contentType: string | null;
  body: Record<string, unknown>;
}

/** A local OTLP/HTTP receiver that records every POST. */
function startReceiver(status = 200) {
  const received: Received[] = [];
  let notify: () => void = () => {};
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    received.push({
      path: new URL(req.url).pathname,
      contentType: req.headers.get("content-type"),
      body: await req.json(),
    });
    notify();
    return new Response("{}", { status, headers: { "content-type": "application/json" } });
  });
  return {
    received,
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    next: () => new Promise<void>((resolve) => (notify = resolve)),
    close: () => server.shutdown(),
  };
}

// deno-lint-ignore no-explicit-any
type Json = any;

function attrs(span: Json): Record<string, unknown> {
  return Object.fromEntries(
    span.attributes.map((a: Json) => [a.key, Object.values(a.value)[0]]),
  );
}

Deno.test("Tracer exports OTLP/HTTP JSON with linked request, auth and upstream spans", async () => {
  const receiver = startReceiver();
  try {
    const tracer = createTracer(
      { endpoint: receiver.endpoint + "/", serviceName: "gate-under-test", sampleRate: 0 },
      { fetch, log: silentLogger },
    );
    const incoming = new Headers({ traceparent: `00-${TRACE}-${PARENT}-01` });
    const request = tracer.startSpan("POST /mcp", {
      parent: tracer.extract(incoming),
      kind: "server",
      attributes: { "http.request.method": "POST", "url.path": "/mcp", "client.address": "203.0.113.9" },
    });
    const auth = tracer.startSpan("auth.verify", { parent: request });
    auth.setAttributes({ "auth.outcome": "valid", "auth.reason": "ok", "enduser.id": "user-123" });
    auth.end();
    const upstream = tracer.startSpan("upstream", { parent: request, kind: "client" });
    const upstreamHeaders = new Headers();
    tracer.inject(upstream, upstreamHeaders);
    upstream.setAttributes({
      "http.request.method": "POST",
      "url.full": "http://127.0.0.1:3000/mcp",
      "http.response.status_code": 502,
      "server.port": 3000,
      "network.latency": 0.5,
      retried: false,
    });
    upstream.setStatus("error", "upstream_unreachable");
    upstream.setStatus("ok");
    upstream.end();
    upstream.end();
    request.setAttribute("http.response.status_code", 502);
    request.end();
    const arrived = receiver.next();
    await tracer.shutdown();
    await arrived;

    assertEquals(receiver.received.length, 1);
    const { path, contentType, body } = receiver.received[0]!;
    assertEquals(path, "/v1/traces");
    assertEquals(contentType, "application/json");
    const b = body as Json;
    assertEquals(b.resourceSpans.length, 1);
    assertEquals(attrs(b.resourceSpans[0].resource)["service.name"], "gate-under-test");
    const spans: Json[] = b.resourceSpans[0].scopeSpans[0].spans;
    assertEquals(spans.map((s) => s.name), ["auth.verify", "upstream", "POST /mcp"]);
    const [a, u, r] = spans;
    for (const s of spans) {
      assertEquals(s.traceId, TRACE);
      assertMatch(s.spanId, /^[0-9a-f]{16}$/);
      assertMatch(s.startTimeUnixNano, /^\d{19}$/);
      assert(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
    }
    // The request continues the client's trace; auth and upstream are its children.
    assertEquals(r.parentSpanId, PARENT);
    assertEquals(a.parentSpanId, r.spanId);
    assertEquals(u.parentSpanId, r.spanId);
    assertEquals([r.kind, a.kind, u.kind], [2, 1, 3]);
    // The upstream gets the upstream span's context.
    assertEquals(upstreamHeaders.get("traceparent"), `00-${TRACE}-${u.spanId}-01`);
    assertEquals(attrs(a), { "auth.outcome": "valid", "auth.reason": "ok", "enduser.id": "user-123" });
    assertEquals(attrs(u), {
      "http.request.method": "POST",
      "url.full": "http://127.0.0.1:3000/mcp",
      "http.response.status_code": "502",
      "server.port": "3000",
      "network.latency": 0.5,
      retried: false,
    });
    assertEquals(u.status, { code: 2, message: "upstream_unreachable" });
    assertEquals(r.status, { code: 0 });
    assertEquals(attrs(r)["client.address"], "203.0.113.9");
  } finally {
    await receiver.close();
  }
});

Deno.test("Tracer flushes a partial batch after the interval, and a full batch at once", async () => {
  const receiver = startReceiver();
  try {
    const tracer = createTracer(
      config({ endpoint: receiver.endpoint, flushIntervalMs: 30, maxBatch: 3 }),
      { fetch, log: silentLogger },
    );
    let arrived = receiver.next();
    tracer.startSpan("one").end();
    await arrived;
    assertEquals(receiver.received.length, 1);
    arrived = receiver.next();
    for (const n of ["a", "b", "c"]) tracer.startSpan(n).end();
    await arrived;
    const spans = (receiver.received[1]!.body as Json).resourceSpans[0].scopeSpans[0].spans;
    assertEquals(spans.map((s: Json) => s.name), ["a", "b", "c"]);
    await tracer.shutdown();
    assertEquals(receiver.received.length, 2);
  } finally {
    await receiver.close();
  }
});

Deno.test("Tracer drops spans when the queue is full and never throws on export failure", async () => {
  const lines: string[] = [];
  const log = createLogger("warn", (l) => lines.push(l));
  const tracer = createTracer(config({ maxQueue: 3, maxBatch: 100 }), { fetch: noFetch(), log });
  for (let i = 0; i < 5; i++) tracer.startSpan(`s${i}`).end();
  assertEquals(tracer.dropped, 2);
  await tracer.flush();
  assertEquals(tracer.dropped, 5);
  tracer.startSpan("after").end();
  await tracer.shutdown();
  assertEquals(tracer.dropped, 6);
  // One warning a minute at most.
  assertEquals(lines.length, 1);
  const entry = JSON.parse(lines[0]!);
  assertEquals(entry.msg, "trace export failed; spans dropped");
  assertExists(entry.error);
});

Deno.test("Tracer counts a collector's error status as a failed export", async () => {
  const receiver = startReceiver(503);
  try {
    const tracer = createTracer(config({ endpoint: receiver.endpoint }), { fetch, log: silentLogger });
    tracer.startSpan("x").end();
    await tracer.shutdown();
    assertEquals(receiver.received.length, 1);
    assertEquals(tracer.dropped, 1);
  } finally {
    await receiver.close();
  }
});

Deno.test("Tracer after shutdown records nothing and starts no timer", async () => {
  const tracer = createTracer(config(), { fetch: noFetch(), log: silentLogger });
  await tracer.shutdown();
  const span = tracer.startSpan("late");
  assertFalse(span.recording);
  span.setAttribute("a", 1).setStatus("error").end();
  assertEquals(tracer.dropped, 0);
});
