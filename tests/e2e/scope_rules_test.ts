// SCOPE_RULES from the outside, on every target: rules read from a file (SCOPE_RULES=@path),
// the 403 step-up challenge, scope hierarchy, header agreement, batches, chunked bodies,
// MAX_REQUEST_BODY and READ_TIMEOUT while the body is read, the access log's MCP fields,
// mcpgate_mcp_requests_total, and offline_access kept out of challenges and metadata.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { startUpstream } from "../_helpers/upstream.ts";
import {
  gatewayEnv,
  gatewayTargets,
  RESOURCE_METADATA_URL,
  runGatewayCommand,
  startGateway,
} from "../_helpers/gateway.ts";
import { assertSecurityHeaders, JSON_RPC_HEADERS, send } from "../_helpers/expect.ts";
import { uniqueUserAgent } from "../_helpers/http.ts";

const RULES = [
  { method: "tools/call", name: "delete_*", scopes: ["mcp:admin", "offline_access"] },
  { method: "tools/call", scopes: ["mcp:tools"] },
  { method: "resources/read", name: "file:///secret/*", scopes: ["files:secret"] },
];
const IMPLIES = { "mcp:admin": ["mcp:tools"], "mcp:tools": ["mcp:read"] };

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const call = (id: number, name: string) =>
  JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: {} } });
const challenge = (scope: string, missing: string) =>
  `Bearer realm="mcp.example.test", resource_metadata="${RESOURCE_METADATA_URL}", scope="${scope}", ` +
  `error="insufficient_scope", error_description="The token lacks the required scope ${missing}"`;

/** Sends the head and part of a body, then nothing: the gateway's answer, read until it closes. */
async function stalledPost(port: number, token: string, partial: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/json\r\nContent-Length: 500\r\n\r\n${partial}`;
  await conn.write(new TextEncoder().encode(head));
  const timer = setTimeout(() => conn.close(), 15_000);
  let out = "";
  const buf = new Uint8Array(8192);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
      if (/\r\n\r\n[\s\S]*\}$/.test(out)) break;
    }
  } catch {
    /* closed by the timer */
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  return out;
}

/**
 * A directory for a rules file that any user may read: the image runs as nobody (65534), and
 * Deno.makeTempDir's 0700 would hide the file from it exactly as it would from a deployment.
 */
async function rulesDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-gate-rules-" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

for (const target of gatewayTargets()) {
  Deno.test(`SCOPE_RULES: per-tool scopes, step-up challenges and a body read within bounds [${target.name}]`, async (t) => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    const dir = await rulesDir();
    await Deno.writeTextFile(`${dir}/rules.json`, JSON.stringify(RULES, null, 2));
    const metricsPort = freePort();
    await using gw = await startGateway(
      target,
      gatewayEnv(issuer, upstream, {
        REQUIRED_SCOPES: "mcp:read,offline_access",
        SCOPES_SUPPORTED: "",
        SCOPE_RULES: `@${dir}/rules.json`,
        SCOPE_IMPLIES: JSON.stringify(IMPLIES),
        MAX_REQUEST_BODY: "4096",
        READ_TIMEOUT: "1s",
        METRICS_ADDR: `127.0.0.1:${metricsPort}`,
      }),
    );
    const read = await issuer.sign({ scope: "mcp:read" });
    const tools = await issuer.sign({ scope: "mcp:tools" });
    const admin = await issuer.sign({ scope: "mcp:admin" });
    const post = (token: string | undefined, body: BodyInit, headers: Record<string, string> = {}, ua?: string) =>
      send(`${gw.url}/mcp`, {
        method: "POST",
        ...(token ? { token } : {}),
        ...(ua ? { userAgent: ua } : {}),
        headers: { ...JSON_RPC_HEADERS, ...headers },
        body,
      });

    await t.step("offline_access is warned about and advertised nowhere", async () => {
      const warnings = gw.find((l) => l.msg === "configuration warning").map((l) => String(l.warning));
      assert(warnings.some((w) => w.startsWith("REQUIRED_SCOPES names offline_access: dropped")), warnings.join("\n"));
      assert(warnings.some((w) => w.startsWith("SCOPE_RULES names offline_access: dropped")), warnings.join("\n"));
      const meta = await send(`${gw.url}/.well-known/oauth-protected-resource/mcp`);
      assertEquals(JSON.parse(meta.text).scopes_supported, ["mcp:read", "mcp:admin", "mcp:tools", "files:secret"]);
      const unauth = await post(undefined, call(1, "echo"));
      assertEquals(unauth.status, 401);
      assertEquals(
        unauth.headers.get("www-authenticate"),
        `Bearer realm="mcp.example.test", resource_metadata="${RESOURCE_METADATA_URL}", scope="mcp:read"`,
      );
    });

    await t.step("a read-only token lists tools; the bytes reach the upstream unchanged", async () => {
      upstream.reset();
      const body = '{"jsonrpc":"2.0",\n "id":1, "method":"tools/list", "params":{"cursor":"\\u00e9"}}';
      const ua = uniqueUserAgent("rules-list");
      const r = await post(read, body, {}, ua);
      assertEquals(r.status, 200);
      assertEquals(upstream.received("/mcp").map((x) => x.body), [body]);
      const log = await gw.accessLog(ua);
      assertEquals([log.mcp_method, log.mcp_name], ["tools/list", undefined]);
    });

    await t.step("an admin tool: 403 naming every scope the call needs; the broader scope passes", async () => {
      upstream.reset();
      const ua = uniqueUserAgent("rules-admin");
      const r = await post(read, call(2, "delete_user"), {}, ua);
      assertEquals(r.status, 403);
      assertEquals(r.headers.get("www-authenticate"), challenge("mcp:read mcp:admin", "mcp:admin"));
      assertEquals(JSON.parse(r.text), {
        error: "insufficient_scope",
        error_description: "The token lacks the required scope mcp:admin",
      });
      assertSecurityHeaders(r.headers);
      const log = await gw.accessLog(ua);
      assertEquals([log.mcp_method, log.mcp_name, log.reason], ["tools/call", "delete_user", "insufficient_scope"]);
      const other = await post(tools, call(3, "delete_user"));
      assertEquals(other.headers.get("www-authenticate"), challenge("mcp:read mcp:admin", "mcp:admin"));
      assertEquals(upstream.received("/mcp").length, 0);
      assertEquals((await post(admin, call(4, "delete_user"))).status, 200, "mcp:admin implies mcp:tools and mcp:read");
      assertEquals((await post(tools, call(5, "echo"))).status, 200, "mcp:tools implies REQUIRED_SCOPES' mcp:read");
      assertEquals(upstream.received("/mcp").length, 2);
    });

    await t.step("a batch with one forbidden call is refused whole", async () => {
      upstream.reset();
      const batch = `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},${call(2, "echo")},${call(3, "delete_all")}]`;
      const r = await post(tools, batch);
      assertEquals(r.status, 403);
      assertEquals(r.headers.get("www-authenticate"), challenge("mcp:read mcp:tools mcp:admin", "mcp:admin"));
      assertEquals(upstream.received("/mcp").length, 0);
    });

    await t.step("Mcp-Name or Mcp-Method disagreeing with the body: 400 -32020", async () => {
      upstream.reset();
      const mismatch = await post(admin, call(6, "delete_all"), { "Mcp-Method": "tools/call", "Mcp-Name": "echo" });
      assertEquals(mismatch.status, 400);
      assertEquals(mismatch.headers.get("content-type"), "application/json");
      assertEquals(
        mismatch.text,
        '{"jsonrpc":"2.0","id":6,"error":{"code":-32020,"message":"Header mismatch: the Mcp-Name header does not match the body"}}',
      );
      const b64 = await post(admin, call(7, "délete_all"), { "Mcp-Name": `=?base64?${btoa("d\xc3\xa9lete_all")}?=` });
      assertEquals(b64.status, 200);
      assertEquals(upstream.received("/mcp").length, 1);
      assertEquals(upstream.received("/mcp")[0]!.headers["mcp-name"], `=?base64?${btoa("d\xc3\xa9lete_all")}?=`);
    });

    await t.step("what cannot be classified is a JSON-RPC 400 and never forwarded", async () => {
      upstream.reset();
      const parse = await post(admin, '{"jsonrpc":"2.0","id":1,"method":');
      assertEquals(parse.status, 400);
      assertEquals(
        parse.text,
        '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the body is not valid JSON"}}',
      );
      const dup = await post(
        read,
        '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"x","name":"delete_all"}}',
      );
      assertEquals(dup.status, 400);
      assertEquals(
        dup.text,
        '{"jsonrpc":"2.0","id":8,"error":{"code":-32600,"message":"Invalid Request: \\"name\\" is given twice"}}',
      );
      assertEquals(upstream.received("/mcp").length, 0);
    });

    await t.step("a chunked body is read, checked and forwarded byte for byte", async () => {
      upstream.reset();
      const body = call(9, "echo");
      const bytes = new TextEncoder().encode(body);
      const chunked = (b: Uint8Array) =>
        new ReadableStream<Uint8Array>({
          start(c) {
            for (let i = 0; i < b.length; i += 16) c.enqueue(b.slice(i, i + 16));
            c.close();
          },
        });
      const r = await post(tools, chunked(bytes));
      assertEquals(r.status, 200);
      assertEquals(upstream.received("/mcp").map((x) => x.body), [body]);
      const denied = await post(read, chunked(bytes));
      assertEquals(denied.status, 403);
      const big = new TextEncoder().encode(call(10, "x".repeat(5000)));
      const tooBig = await post(admin, chunked(big));
      assertEquals(tooBig.status, 413);
      assertEquals(JSON.parse(tooBig.text), {
        error: "body_too_large",
        error_description: "Request body exceeds 4096 bytes",
      });
      assertEquals(upstream.received("/mcp").length, 1);
    });

    await t.step("a declared body over MAX_REQUEST_BODY is 413 at once", async () => {
      const r = await post(admin, call(11, "x".repeat(5000)));
      assertEquals(r.status, 413);
    });

    await t.step("a body that stops coming is 408 after READ_TIMEOUT", async () => {
      upstream.reset();
      const t0 = performance.now();
      const out = await stalledPost(gw.port, admin, '{"jsonrpc":"2.0","id":12,');
      assertStringIncludes(out.split("\r\n")[0]!, " 408 ");
      assertStringIncludes(
        out,
        '{"error":"read_timeout","error_description":"The request body was not received within 1000 ms"}',
      );
      assert(performance.now() - t0 < 10_000);
      assertEquals(upstream.received("/mcp").length, 0);
    });

    await t.step("GET and DELETE need REQUIRED_SCOPES only", async () => {
      upstream.reset();
      const del = await send(`${gw.url}/mcp`, { method: "DELETE", token: read });
      assertEquals(del.status, 204);
      assertEquals(upstream.received("/mcp").map((x) => x.method), ["DELETE"]);
    });

    await t.step("one count per message in mcpgate_mcp_requests_total", async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const sample = (method: string, outcome: string) => {
        const line = text.split("\n").find((l) =>
          l.startsWith(`mcpgate_mcp_requests_total{method="${method}",outcome="${outcome}"}`)
        );
        return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
      };
      // tools/call: allowed 4 (admin delete, tools echo, b64 name, chunked); denied 5 (read and tools
      // delete_user, batch echo + delete_all, chunked read); invalid 2 (the mismatch, the duplicate name).
      assertEquals(
        [sample("tools/call", "allowed"), sample("tools/call", "denied"), sample("tools/call", "invalid")],
        [4, 5, 2],
      );
      assertEquals([sample("tools/list", "allowed"), sample("tools/list", "denied")], [1, 1]);
      assertEquals(sample("other", "invalid"), 1);
    });

    await gw.stopAndCheck([read, tools, admin]);
    await Deno.remove(dir, { recursive: true });
  });

  Deno.test(`SCOPE_RULES: a bad rules file stops start-up naming the variable and the path [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    const dir = await rulesDir();
    await Deno.writeTextFile(`${dir}/bad.json`, '[{"method": "tools/call", "scopes": "mcp:admin"}]');
    for (
      const [value, expected] of [
        [
          `@${dir}/missing.json`,
          `SCOPE_RULES is "@${dir}/missing.json": expected a readable JSON file at "${dir}/missing.json"`,
        ],
        [`@${dir}/bad.json`, `SCOPE_RULES is "@${dir}/bad.json": rule 1 in "${dir}/bad.json" needs "scopes"`],
        ["[{]", 'SCOPE_RULES is "[{]": expected a JSON array of rules'],
      ]
    ) {
      const out = await runGatewayCommand(
        target,
        [],
        gatewayEnv(issuer, "http://127.0.0.1:9", { SCOPE_RULES: value! }),
      );
      assertEquals(out.code, 1, out.stdout + out.stderr);
      assertStringIncludes(out.stdout + out.stderr, expected!);
    }
    await Deno.remove(dir, { recursive: true });
  });
}
