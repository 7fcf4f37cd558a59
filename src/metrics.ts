/**
 * Prometheus metrics: a small registry (counters, gauges, histograms with labels) and the
 * text exposition format 0.0.4, plus `GatewayMetrics`, the named hooks the gateway calls.
 *
 * Not prom-client: its entry point eagerly requires node:cluster, node:http, node:zlib and
 * node:util (and its default metrics perf_hooks, v8, fs), and it depends on
 * @opentelemetry/api and tdigest — Node APIs in the core would break the Web-standard
 * rule and bloat the compiled binary, for features (summaries, push gateway, cluster
 * aggregation) the gateway does not use.
 *
 * Hot-path cost: every series the gateway touches is a pre-resolved child object; a
 * request costs an array or Map lookup and a few additions, never string building.
 * Metric names follow the Go mcp-gate so existing dashboards keep working.
 */

const MetricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LabelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Prometheus' default buckets, extended to the upstream timeout range. */
export const DurationBuckets: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
];

export const ContentType = "text/plain; version=0.0.4; charset=utf-8";

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A sample value as Prometheus writes it: integers plain, ±Inf and NaN spelled out. */
export function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** `{a="x",b="y"}` for the given names and values; "" when there are none. */
function labelBlock(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i]!)}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

abstract class Metric<Child> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: "counter" | "gauge" | "histogram";
  protected readonly children = new Map<string, Child>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!MetricName.test(name)) throw new Error(`Invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LabelName.test(l) || l.startsWith("__")) {
        throw new Error(`Invalid label name ${JSON.stringify(l)} on metric ${name}`);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract create(labels: string): Child;

  /** The child for these label values (created on first use; keep the result on hot paths). */
  labels(...values: string[]): Child {
    if (values.length !== this.labelNames.length) {
      throw new Error(`Metric ${this.name} expects ${this.labelNames.length} label value(s), got ${values.length}`);
    }
    const key = values.join("\u0000");
    let child = this.children.get(key);
    if (child === undefined) {
      child = this.create(labelBlock(this.labelNames, values));
      this.children.set(key, child);
    }
    return child;
  }

  protected abstract renderChild(child: Child, out: string[]): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    for (const child of this.children.values()) this.renderChild(child, out);
  }
}

export class CounterChild {
  value = 0;
  constructor(readonly labels: string) {}
  inc(by = 1): void {
    if (by < 0) throw new Error("A counter can only increase");
    this.value += by;
  }
}

export class Counter extends Metric<CounterChild> {
  readonly type = "counter";
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames);
    if (labelNames.length === 0) this.labels();
  }
  protected create(labels: string): CounterChild {
    return new CounterChild(labels);
  }
  protected renderChild(c: CounterChild, out: string[]): void {
    out.push(`${this.name}${c.labels} ${formatValue(c.value)}`);
  }
}

export class GaugeChild {
  value = 0;
  constructor(readonly labels: string) {}
  set(v: number): void {
    this.value = v;
  }
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
}

export class Gauge extends Metric<GaugeChild> {
  readonly type = "gauge";
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames);
    if (labelNames.length === 0) this.labels();
  }
  protected create(labels: string): GaugeChild {
    return new GaugeChild(labels);
  }
  protected renderChild(c: GaugeChild, out: string[]): void {
    out.push(`${this.name}${c.labels} ${formatValue(c.value)}`);
  }
}

export class HistogramChild {
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly labels: string, readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

export class Histogram extends Metric<HistogramChild> {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  readonly #le: readonly string[];

  constructor(name: string, help: string, labelNames: readonly string[] = [], buckets = DurationBuckets) {
    super(name, help, labelNames);
    if (labelNames.includes("le")) throw new Error(`Histogram ${name} cannot have a label named "le"`);
    const sorted = [...buckets].filter((b) => b !== Infinity);
    for (let i = 1; i < sorted.length; i++) {
      if (!(sorted[i]! > sorted[i - 1]!)) throw new Error(`Histogram ${name} needs strictly increasing buckets`);
    }
    this.buckets = sorted;
    this.#le = [...sorted.map(formatValue), "+Inf"];
    if (labelNames.length === 0) this.labels();
  }
  protected create(labels: string): HistogramChild {
    return new HistogramChild(labels, this.buckets);
  }
  protected renderChild(c: HistogramChild, out: string[]): void {
    const inner = c.labels === "" ? "" : c.labels.slice(1, -1) + ",";
    let cumulative = 0;
    for (let i = 0; i < this.#le.length; i++) {
      cumulative += c.counts[i]!;
      out.push(`${this.name}_bucket{${inner}le="${this.#le[i]}"} ${formatValue(cumulative)}`);
    }
    out.push(
      `${this.name}_sum${c.labels} ${formatValue(c.sum)}`,
      `${this.name}_count${c.labels} ${formatValue(c.count)}`,
    );
  }
}

type AnyMetric = Counter | Gauge | Histogram;

/** An ordered set of metrics rendered together. */
export class Registry {
  readonly #metrics = new Map<string, AnyMetric>();

  #add<M extends AnyMetric>(m: M): M {
    if (this.#metrics.has(m.name)) throw new Error(`Metric ${m.name} is already registered`);
    this.#metrics.set(m.name, m);
    return m;
  }
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets = DurationBuckets): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** The text exposition format 0.0.4, ending with a newline. */
  render(): string {
    const out: string[] = [];
    for (const m of this.#metrics.values()) m.render(out);
    return out.join("\n") + "\n";
  }
}

// ---------------------------------------------------------------------------------------
// The gateway's metrics.

export type AuthOutcome = "valid" | "invalid" | "missing" | "forbidden" | "error";
export type ConcurrencyLimit = "per_client" | "total";
export type RateLimitScope = "ip" | "user";

/**
 * The outcome label for a failed check, from an AuthError's code and status: no token →
 * missing; 403 (scope) → forbidden; 5xx (keys not loaded) → error; any other → invalid.
 */
export function authOutcomeFor(code: string, status: number): AuthOutcome {
  if (code === "missing_token") return "missing";
  if (status === 403) return "forbidden";
  if (status >= 500) return "error";
  return "invalid";
}

/** Methods kept as their own label value; anything else is "other" (bounded cardinality). */
const KnownMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"] as const;
const MethodIndex = new Map<string, number>(KnownMethods.map((m, i) => [m, i]));
const OtherMethod = KnownMethods.length - 1;
/** Distinct reasons per outcome before further ones are folded into "other". */
const MaxReasons = 64;

function statusSlot(status: number): number {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? status - 99 : 0;
}
function statusLabel(slot: number): string {
  return slot === 0 ? "other" : String(slot + 99);
}

interface RequestSeries {
  count: CounterChild;
  duration: HistogramChild;
}

export class GatewayMetrics {
  readonly registry = new Registry();

  readonly #info = this.registry.gauge("mcpgate_info", "Build and runtime information; always 1", [
    "version",
    "runtime",
  ]);
  readonly #requests = this.registry.counter(
    "mcpgate_http_requests_total",
    "HTTP requests answered, by method and status",
    [
      "method",
      "status",
    ],
  );
  readonly #requestDuration = this.registry.histogram(
    "mcpgate_http_request_duration_seconds",
    "Time from request to response headers, by method and status",
    ["method", "status"],
  );
  readonly #auth = this.registry.counter(
    "mcpgate_auth_validations_total",
    "Token checks, by outcome (valid, invalid, missing, forbidden, error) and reason",
    ["outcome", "reason"],
  );
  readonly #proxy = this.registry.counter(
    "mcpgate_proxy_requests_total",
    'Requests forwarded to the upstream, by upstream status ("error": no response)',
    ["status"],
  );
  readonly #proxyDuration = this.registry.histogram(
    "mcpgate_proxy_request_duration_seconds",
    "Time from forwarding to the upstream's response headers, by upstream status",
    ["status"],
  );
  readonly #jwksKeys = this.registry.gauge("mcpgate_jwks_keys_loaded", "Signing keys currently loaded");
  readonly #jwksFetches = this.registry.counter("mcpgate_jwks_fetches_total", "JWKS fetch attempts, by outcome", [
    "outcome",
  ]);
  readonly #jwksErrors = this.registry.counter("mcpgate_jwks_refresh_errors_total", "Failed JWKS fetches");
  readonly #jwksChanged = this.registry.gauge(
    "mcpgate_jwks_last_key_change_timestamp_seconds",
    "Unix time the set of signing keys last changed",
  );
  readonly #introspections = this.registry.counter(
    "mcpgate_introspection_requests_total",
    "RFC 7662 introspection requests, by outcome (active, inactive, unreachable, timeout, credentials, status, " +
      "bad_answer)",
    ["outcome"],
  );
  readonly #introspectionDuration = this.registry.histogram(
    "mcpgate_introspection_duration_seconds",
    "Time of one introspection request, answer included",
  );
  readonly #rateLimited = this.registry.counter(
    "mcpgate_rate_limited_total",
    "Requests refused by a rate limit (429), by scope (ip: RATE_LIMIT_*, user: USER_RATE_LIMIT_*)",
    ["scope"],
  );
  readonly #storeErrors = this.registry.counter(
    "mcpgate_rate_limit_store_errors_total",
    "Rate-limit decisions the shared store (Redis) failed or did not answer within REDIS_TIMEOUT",
  );
  readonly #concurrentLimited = this.registry.counter(
    "mcpgate_concurrent_limited_total",
    "Requests refused by a concurrency cap (per_client: 429, total: 503)",
    ["limit"],
  );
  readonly #activeConnections = this.registry.gauge(
    "mcpgate_active_connections",
    "Requests holding a slot of MAX_TOTAL_CONNECTIONS (until their response body ends)",
  ).labels();
  readonly #activeRequests = this.registry.gauge(
    "mcpgate_active_requests",
    "Requests being handled (until their response headers)",
  ).labels();

  /** [method][status slot] → series, created on first use. */
  readonly #requestSeries: (RequestSeries | undefined)[][] = KnownMethods.map(() => []);
  readonly #proxySeries: (RequestSeries | undefined)[] = [];
  readonly #proxyError: RequestSeries = {
    count: this.#proxy.labels("error"),
    duration: this.#proxyDuration.labels("error"),
  };
  readonly #authSeries = new Map<AuthOutcome, Map<string, CounterChild>>();
  readonly #fetchOk = this.#jwksFetches.labels("ok");
  readonly #fetchError = this.#jwksFetches.labels("error");
  readonly #jwksErrorCount = this.#jwksErrors.labels();
  readonly #rateLimitedIp = this.#rateLimited.labels("ip");
  readonly #rateLimitedUser = this.#rateLimited.labels("user");
  readonly #storeErrorCount = this.#storeErrors.labels();
  readonly #perClientLimited = this.#concurrentLimited.labels("per_client");
  readonly #totalLimited = this.#concurrentLimited.labels("total");
  readonly #keysByIssuer = new Map<string, { keys: number; version: number | undefined }>();
  readonly #introspectionSeries = new Map<string, CounterChild>();
  #introspectionTime: HistogramChild | undefined;

  /** Sets mcpgate_info{version, runtime} 1. */
  info(version: string, runtime: string): void {
    this.#info.labels(version, runtime).set(1);
  }

  /** One answered request; `seconds` to the response headers. */
  requestDone(method: string, status: number, seconds: number): void {
    const m = MethodIndex.get(method) ?? OtherMethod;
    const slot = statusSlot(status);
    const row = this.#requestSeries[m]!;
    let s = row[slot];
    if (s === undefined) {
      const labels = [KnownMethods[m]!, statusLabel(slot)];
      s = { count: this.#requests.labels(...labels), duration: this.#requestDuration.labels(...labels) };
      row[slot] = s;
    }
    s.count.inc();
    s.duration.observe(seconds);
  }

  /** One token check. `reason` is a stable code ("ok" when valid); unbounded sets are folded. */
  authOutcome(outcome: AuthOutcome, reason: string): void {
    let byReason = this.#authSeries.get(outcome);
    if (byReason === undefined) {
      byReason = new Map();
      this.#authSeries.set(outcome, byReason);
    }
    let child = byReason.get(reason);
    if (child === undefined) {
      const label = byReason.size < MaxReasons ? reason : "other";
      child = this.#auth.labels(outcome, label);
      if (byReason.size < MaxReasons) byReason.set(reason, child);
    }
    child.inc();
  }

  /** One upstream exchange: its status, or "error" when no response came (502/504). */
  proxyDone(status: number | "error", seconds: number): void {
    let s: RequestSeries;
    if (status === "error") {
      s = this.#proxyError;
    } else {
      const slot = statusSlot(status);
      let found = this.#proxySeries[slot];
      if (found === undefined) {
        const label = statusLabel(slot);
        found = { count: this.#proxy.labels(label), duration: this.#proxyDuration.labels(label) };
        this.#proxySeries[slot] = found;
      }
      s = found;
    }
    s.count.inc();
    s.duration.observe(seconds);
  }

  /**
   * One JWKS fetch attempt (KeySet's onFetch). The keys gauge is the sum over issuers.
   * When `version` (KeySet.version) is given, a change of it sets the last-change time.
   */
  jwksFetch(ok: boolean, keys: number, issuer = "", version?: number, nowMs: number = Date.now()): void {
    (ok ? this.#fetchOk : this.#fetchError).inc();
    if (!ok) this.#jwksErrorCount.inc();
    const prev = this.#keysByIssuer.get(issuer);
    this.#keysByIssuer.set(issuer, { keys, version });
    let total = 0;
    for (const v of this.#keysByIssuer.values()) total += v.keys;
    this.#jwksKeys.labels().set(total);
    if (ok && version !== undefined && prev?.version !== version) this.keysChanged(nowMs);
  }

  /** The set of signing keys changed at `nowMs` (milliseconds since the epoch). */
  keysChanged(nowMs: number): void {
    this.#jwksChanged.labels().set(Math.floor(nowMs / 1000));
  }

  /** One introspection request: its outcome (a small fixed set) and how long it took. */
  introspection(outcome: string, seconds: number): void {
    let child = this.#introspectionSeries.get(outcome);
    if (child === undefined) {
      child = this.#introspections.labels(outcome);
      this.#introspectionSeries.set(outcome, child);
    }
    child.inc();
    (this.#introspectionTime ??= this.#introspectionDuration.labels()).observe(seconds);
  }

  rateLimited(scope: RateLimitScope = "ip"): void {
    (scope === "user" ? this.#rateLimitedUser : this.#rateLimitedIp).inc();
  }

  /** A limit decision the shared store failed (error or REDIS_TIMEOUT). */
  rateLimitStoreError(): void {
    this.#storeErrorCount.inc();
  }

  concurrentLimited(limit: ConcurrencyLimit = "per_client"): void {
    (limit === "total" ? this.#totalLimited : this.#perClientLimited).inc();
  }

  requestStarted(): void {
    this.#activeRequests.inc();
  }
  requestFinished(): void {
    this.#activeRequests.dec();
  }
  connectionOpened(): void {
    this.#activeConnections.inc();
  }
  connectionClosed(): void {
    this.#activeConnections.dec();
  }

  readonly #mcpRequests = this.registry.counter(
    "mcpgate_mcp_requests_total",
    "JSON-RPC messages classified under SCOPE_RULES, by MCP method (other: a method outside the MCP " +
      "specification, or a response) and outcome (allowed, denied, invalid)",
    ["method", "outcome"],
  );
  /** method label → [allowed, denied, invalid]. */
  readonly #mcpSeries = new Map<string, CounterChild[]>();

  /** One JSON-RPC message (SCOPE_RULES): its method (undefined: a response or unreadable) and outcome. */
  mcpMessage(method: string | undefined, outcome: McpOutcome): void {
    const label = method !== undefined && McpMethodNames.has(method) ? method : "other";
    let row = this.#mcpSeries.get(label);
    if (row === undefined) {
      row = McpOutcomes.map((o) => this.#mcpRequests.labels(label, o));
      this.#mcpSeries.set(label, row);
    }
    row[McpOutcomes.indexOf(outcome)]!.inc();
  }

  render(): string {
    return this.registry.render();
  }
}

export type McpOutcome = "allowed" | "denied" | "invalid";
const McpOutcomes: readonly McpOutcome[] = ["allowed", "denied", "invalid"];

/** The methods of the MCP specification (2024-11-05 to 2026-07-28): the only values of the method label. */
export const McpMethodNames: ReadonlySet<string> = new Set([
  "initialize",
  "ping",
  "server/discover",
  "subscriptions/listen",
  "tools/list",
  "tools/call",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
  "tasks/get",
  "tasks/result",
  "tasks/list",
  "tasks/cancel",
  "sampling/createMessage",
  "elicitation/create",
  "roots/list",
  "notifications/initialized",
  "notifications/cancelled",
  "notifications/progress",
  "notifications/message",
  "notifications/resources/updated",
  "notifications/resources/list_changed",
  "notifications/tools/list_changed",
  "notifications/prompts/list_changed",
  "notifications/roots/list_changed",
  "notifications/elicitation/complete",
  "notifications/tasks/status",
]);

/** The fetch handler of the metrics listener: GET/HEAD /metrics, 404 elsewhere. */
export function metricsHandler(metrics: { render(): string }): (req: Request) => Response {
  return function serveMetrics(req: Request): Response {
    const path = new URL(req.url).pathname;
    if (path !== "/metrics") {
      return new Response("Not found\n", { status: 404, headers: { "content-type": ContentType } });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("Method not allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD", "content-type": ContentType },
      });
    }
    return new Response(req.method === "HEAD" ? null : metrics.render(), {
      status: 200,
      headers: { "content-type": ContentType, "cache-control": "no-store" },
    });
  };
}
