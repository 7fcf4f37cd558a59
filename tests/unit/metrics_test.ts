import { assert, assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import {
  authOutcomeFor,
  ContentType,
  Counter,
  formatValue,
  GatewayMetrics,
  Histogram,
  metricsHandler,
  Registry,
} from "../../src/metrics.ts";

/** Sample lines (no comments) of a rendering, as name{labels} → value. */
function samples(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

Deno.test("Registry.render() writes HELP and TYPE lines and escapes help text", () => {
  const r = new Registry();
  r.counter("a_total", "Line one\nwith a \\ backslash").labels().inc(3);
  r.gauge("b", "A gauge").labels().set(-1.5);
  assertEquals(
    r.render(),
    "# HELP a_total Line one\\nwith a \\\\ backslash\n# TYPE a_total counter\na_total 3\n" +
      "# HELP b A gauge\n# TYPE b gauge\nb -1.5\n",
  );
});

Deno.test("Counter renders unlabelled at 0 and labelled series only once used", () => {
  const r = new Registry();
  r.counter("plain_total", "p");
  const labelled = r.counter("labelled_total", "l", ["code"]);
  let text = r.render();
  assertStringIncludes(text, "\nplain_total 0\n");
  assert(!text.includes("labelled_total{"));
  labelled.labels("x").inc();
  labelled.labels("x").inc(2);
  text = r.render();
  assertStringIncludes(text, '\nlabelled_total{code="x"} 3\n');
});

Deno.test("label values are escaped: backslash, double quote, newline", () => {
  const r = new Registry();
  r.counter("esc_total", "e", ["v"]).labels('a\\b"c\nd').inc();
  assertStringIncludes(r.render(), 'esc_total{v="a\\\\b\\"c\\nd"} 1');
});

Deno.test("Counter refuses to go down, and metric and label names are validated", () => {
  const c = new Counter("ok_total", "x");
  assertThrows(() => c.labels().inc(-1), Error, "only increase");
  assertThrows(() => new Counter("bad-name", "x"), Error, "Invalid metric name");
  assertThrows(() => new Counter("ok", "x", ["__reserved"]), Error, "Invalid label name");
  assertThrows(() => new Counter("ok", "x", ["a"]).labels(), Error, "expects 1 label value");
  assertThrows(() => new Histogram("h", "x", ["le"]), Error, '"le"');
  assertThrows(() => new Histogram("h", "x", [], [1, 1]), Error, "strictly increasing");
  const r = new Registry();
  r.gauge("dup", "x");
  assertThrows(() => r.gauge("dup", "x"), Error, "already registered");
});

Deno.test("Histogram renders cumulative _bucket{le}, +Inf, _sum and _count", () => {
  const r = new Registry();
  const h = r.histogram("lat_seconds", "Latency", ["route"], [0.1, 1, 10]);
  const child = h.labels("/mcp");
  for (const v of [0.05, 0.1, 0.5, 2, 50]) child.observe(v);
  const lines = r.render().split("\n");
  assertEquals(lines.slice(0, 2), ["# HELP lat_seconds Latency", "# TYPE lat_seconds histogram"]);
  assertEquals(lines.slice(2, 8), [
    'lat_seconds_bucket{route="/mcp",le="0.1"} 2',
    'lat_seconds_bucket{route="/mcp",le="1"} 3',
    'lat_seconds_bucket{route="/mcp",le="10"} 4',
    'lat_seconds_bucket{route="/mcp",le="+Inf"} 5',
    'lat_seconds_sum{route="/mcp"} 52.65',
    'lat_seconds_count{route="/mcp"} 5',
  ]);
});

Deno.test("Histogram without labels renders its buckets at zero", () => {
  const r = new Registry();
  r.histogram("empty_seconds", "e", [], [1]);
  const s = samples(r.render());
  assertEquals(s.get('empty_seconds_bucket{le="1"}'), "0");
  assertEquals(s.get('empty_seconds_bucket{le="+Inf"}'), "0");
  assertEquals(s.get("empty_seconds_sum"), "0");
  assertEquals(s.get("empty_seconds_count"), "0");
});

Deno.test("formatValue() spells out infinities and NaN", () => {
  assertEquals([formatValue(1), formatValue(0.25), formatValue(Infinity), formatValue(-Infinity), formatValue(NaN)], [
    "1",
    "0.25",
    "+Inf",
    "-Inf",
    "NaN",
  ]);
});

Deno.test("GatewayMetrics uses the Go mcp-gate metric names", () => {
  const text = new GatewayMetrics().render();
  for (
    const name of [
      "mcpgate_info",
      "mcpgate_http_requests_total",
      "mcpgate_http_request_duration_seconds",
      "mcpgate_auth_validations_total",
      "mcpgate_proxy_requests_total",
      "mcpgate_proxy_request_duration_seconds",
      "mcpgate_jwks_keys_loaded",
      "mcpgate_jwks_refresh_errors_total",
      "mcpgate_jwks_last_key_change_timestamp_seconds",
      "mcpgate_rate_limited_total",
      "mcpgate_rate_limit_store_errors_total",
      "mcpgate_concurrent_limited_total",
      "mcpgate_active_connections",
      "mcpgate_active_requests",
    ]
  ) {
    assertStringIncludes(text, `# TYPE ${name} `);
  }
});

Deno.test("GatewayMetrics records requests by method and status; unknown methods become other", () => {
  const m = new GatewayMetrics();
  m.requestDone("POST", 200, 0.02);
  m.requestDone("POST", 200, 0.3);
  m.requestDone("GET", 401, 0.001);
  m.requestDone("BREW", 405, 0.001);
  m.requestDone("PROPFIND", 405, 0.001);
  m.requestDone("GET", 999, 0.001);
  const s = samples(m.render());
  assertEquals(s.get('mcpgate_http_requests_total{method="POST",status="200"}'), "2");
  assertEquals(s.get('mcpgate_http_requests_total{method="GET",status="401"}'), "1");
  assertEquals(s.get('mcpgate_http_requests_total{method="other",status="405"}'), "2");
  assertEquals(s.get('mcpgate_http_requests_total{method="GET",status="other"}'), "1");
  assertEquals(s.get('mcpgate_http_request_duration_seconds_count{method="POST",status="200"}'), "2");
  assertEquals(s.get('mcpgate_http_request_duration_seconds_bucket{method="POST",status="200",le="0.025"}'), "1");
  assertEquals(s.get('mcpgate_http_request_duration_seconds_bucket{method="POST",status="200",le="0.5"}'), "2");
  assertEquals(s.get('mcpgate_http_request_duration_seconds_sum{method="POST",status="200"}'), "0.32");
});

Deno.test("GatewayMetrics records auth outcomes by reason, folding runaway reason sets", () => {
  const m = new GatewayMetrics();
  m.authOutcome("valid", "ok");
  m.authOutcome("invalid", "expired");
  m.authOutcome("invalid", "expired");
  m.authOutcome("missing", "missing_token");
  m.authOutcome("forbidden", "insufficient_scope");
  for (let i = 0; i < 100; i++) m.authOutcome("error", `r${i}`);
  const s = samples(m.render());
  assertEquals(s.get('mcpgate_auth_validations_total{outcome="valid",reason="ok"}'), "1");
  assertEquals(s.get('mcpgate_auth_validations_total{outcome="invalid",reason="expired"}'), "2");
  assertEquals(s.get('mcpgate_auth_validations_total{outcome="missing",reason="missing_token"}'), "1");
  assertEquals(s.get('mcpgate_auth_validations_total{outcome="forbidden",reason="insufficient_scope"}'), "1");
  assertEquals(s.get('mcpgate_auth_validations_total{outcome="error",reason="other"}'), "36");
  assertEquals([...s.keys()].filter((k) => k.startsWith('mcpgate_auth_validations_total{outcome="error"')).length, 65);
});

Deno.test("GatewayMetrics records proxy exchanges, with error for no response", () => {
  const m = new GatewayMetrics();
  m.proxyDone(200, 0.1);
  m.proxyDone(200, 0.2);
  m.proxyDone("error", 120);
  const s = samples(m.render());
  assertEquals(s.get('mcpgate_proxy_requests_total{status="200"}'), "2");
  assertEquals(s.get('mcpgate_proxy_requests_total{status="error"}'), "1");
  assertEquals(s.get('mcpgate_proxy_request_duration_seconds_bucket{status="error",le="60"}'), "0");
  assertEquals(s.get('mcpgate_proxy_request_duration_seconds_bucket{status="error",le="120"}'), "1");
  assertEquals(s.get('mcpgate_proxy_request_duration_seconds_count{status="200"}'), "2");
});

Deno.test("GatewayMetrics tracks JWKS keys over issuers, errors and the last key change", () => {
  const m = new GatewayMetrics();
  m.jwksFetch(true, 2, "https://a", 1, 1_700_000_000_500);
  m.jwksFetch(true, 3, "https://b", 1, 1_700_000_001_000);
  let s = samples(m.render());
  assertEquals(s.get("mcpgate_jwks_keys_loaded"), "5");
  assertEquals(s.get("mcpgate_jwks_last_key_change_timestamp_seconds"), "1700000001");
  // Same version again: no change of keys.
  m.jwksFetch(true, 2, "https://a", 1, 1_700_000_100_000);
  m.jwksFetch(false, 2, "https://a", 1, 1_700_000_200_000);
  s = samples(m.render());
  assertEquals(s.get("mcpgate_jwks_last_key_change_timestamp_seconds"), "1700000001");
  assertEquals(s.get("mcpgate_jwks_refresh_errors_total"), "1");
  assertEquals(s.get('mcpgate_jwks_fetches_total{outcome="ok"}'), "3");
  assertEquals(s.get('mcpgate_jwks_fetches_total{outcome="error"}'), "1");
  m.jwksFetch(true, 1, "https://a", 2, 1_700_000_300_000);
  s = samples(m.render());
  assertEquals(s.get("mcpgate_jwks_keys_loaded"), "4");
  assertEquals(s.get("mcpgate_jwks_last_key_change_timestamp_seconds"), "1700000300");
  m.keysChanged(1_800_000_000_000);
  assertEquals(samples(m.render()).get("mcpgate_jwks_last_key_change_timestamp_seconds"), "1800000000");
});

Deno.test("GatewayMetrics counts limits and in-flight gauges, and sets mcpgate_info", () => {
  const m = new GatewayMetrics();
  m.info("0.1.0", "deno 2.9.6");
  m.rateLimited();
  m.rateLimited("ip");
  m.rateLimited("user");
  m.rateLimitStoreError();
  m.concurrentLimited("per_client");
  m.concurrentLimited("total");
  m.concurrentLimited("total");
  m.requestStarted();
  m.requestStarted();
  m.requestFinished();
  m.connectionOpened();
  const s = samples(m.render());
  assertEquals(s.get('mcpgate_info{version="0.1.0",runtime="deno 2.9.6"}'), "1");
  assertEquals(s.get('mcpgate_rate_limited_total{scope="ip"}'), "2");
  assertEquals(s.get('mcpgate_rate_limited_total{scope="user"}'), "1");
  assertEquals(s.get("mcpgate_rate_limit_store_errors_total"), "1");
  assertEquals(s.get('mcpgate_concurrent_limited_total{limit="per_client"}'), "1");
  assertEquals(s.get('mcpgate_concurrent_limited_total{limit="total"}'), "2");
  assertEquals(s.get("mcpgate_active_requests"), "1");
  assertEquals(s.get("mcpgate_active_connections"), "1");
});

Deno.test("GatewayMetrics.render() output parses as the text format: every sample has a TYPE", () => {
  const m = new GatewayMetrics();
  m.info("0.1.0", "bun 1.4.5");
  m.requestDone("GET", 200, 0.01);
  m.authOutcome("valid", "ok");
  m.proxyDone(204, 0.01);
  const text = m.render();
  assert(text.endsWith("\n"));
  const typed = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      typed.add(type[1]!);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert(sample, `Not a sample line: ${JSON.stringify(line)}`);
    const base = sample[1]!.replace(/_(bucket|sum|count)$/, "");
    assert(typed.has(sample[1]!) || typed.has(base), `No TYPE before ${sample[1]}`);
    assert(!Number.isNaN(Number(sample[3]!.replace("+Inf", "Infinity"))));
  }
});

Deno.test("metricsHandler() serves GET /metrics in format 0.0.4 and 404 elsewhere", async () => {
  const m = new GatewayMetrics();
  m.rateLimited();
  const handler = metricsHandler(m);
  const ok = handler(new Request("http://127.0.0.1:9090/metrics"));
  assertEquals(ok.status, 200);
  assertEquals(ok.headers.get("content-type"), ContentType);
  assertEquals(ContentType, "text/plain; version=0.0.4; charset=utf-8");
  assertStringIncludes(await ok.text(), 'mcpgate_rate_limited_total{scope="ip"} 1\n');
  const head = handler(new Request("http://127.0.0.1:9090/metrics", { method: "HEAD" }));
  assertEquals(head.status, 200);
  assertEquals(await head.text(), "");
  const missing = handler(new Request("http://127.0.0.1:9090/"));
  assertEquals(missing.status, 404);
  await missing.body?.cancel();
  const post = handler(new Request("http://127.0.0.1:9090/metrics", { method: "POST" }));
  assertEquals(post.status, 405);
  await post.body?.cancel();
});

Deno.test("deploy/grafana-dashboard.json queries only metrics GatewayMetrics exposes", async () => {
  const text = await Deno.readTextFile(new URL("../../deploy/grafana-dashboard.json", import.meta.url));
  const dashboard = JSON.parse(text);
  const variables = dashboard.templating.list.map((v: { name: string; type: string }) => `${v.name}:${v.type}`);
  assert(variables.includes("datasource:datasource"), "the data source is a template variable");
  const exposed = new Set(
    [...new GatewayMetrics().render().matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!),
  );
  const used = new Set([...text.matchAll(/mcpgate_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, "")));
  assert(used.size >= 13, `only ${used.size} metrics used`);
  for (const name of used) assert(exposed.has(name), `The dashboard queries ${name}, which is not exposed`);
});

Deno.test("authOutcomeFor() maps AuthError codes and statuses to outcomes", () => {
  assertEquals(authOutcomeFor("missing_token", 401), "missing");
  assertEquals(authOutcomeFor("expired", 401), "invalid");
  assertEquals(authOutcomeFor("bad_audience", 401), "invalid");
  assertEquals(authOutcomeFor("token_in_query", 400), "invalid");
  assertEquals(authOutcomeFor("insufficient_scope", 403), "forbidden");
  assertEquals(authOutcomeFor("no_keys", 503), "error");
});
