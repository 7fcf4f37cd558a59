// `mcp-gate demo` in every form: deno run, bun run, the compiled binary and the bundle
// from a URL. Each run: read the banner, do what its curl lines do (initialize with the
// printed token, a countdown whose progress must arrive while it runs, the 401 without
// a token), then SIGTERM stops all three servers.
import { assert, assertEquals, assertGreater, assertMatch, assertStringIncludes } from "@std/assert";
import { serveDir } from "../../scripts/serve_dist.ts";
import { artifacts, BUN, DENO, type Proc, spawn, tempDir } from "./_dist.ts";

const Accept = "application/json, text/event-stream";

interface Banner {
  mcpUrl: string;
  token: string;
  issuer: string;
}

async function readBanner(proc: Proc): Promise<Banner> {
  await proc.waitForStderr(/Ctrl-C stops all three/, 30_000);
  const text = proc.stderr;
  assertStringIncludes(text, "DEMO — NOT FOR PRODUCTION");
  const mcpUrl = text.match(/MCP URL:\s+(\S+)/)?.[1];
  const issuer = text.match(/Authorization server:\s+(\S+)/)?.[1];
  const token = text.match(/Authorization: Bearer ([A-Za-z0-9_.-]+)'/)?.[1];
  assert(mcpUrl && issuer && token, `banner has the URL, the issuer and a curl line with a token\n${text}`);
  for (const u of [mcpUrl, issuer]) assertMatch(u, /^http:\/\/127\.0\.0\.1:\d+/, "loopback only");
  return { mcpUrl, token, issuer };
}

async function rpc(url: string, token: string | null, body: unknown, session?: string): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json", accept: Accept };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (session) headers["mcp-session-id"] = session;
  return await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
}

/** Reads an SSE body, noting when each event's data arrived. */
async function readEvents(res: Response): Promise<{ at: number; data: Record<string, unknown> }[]> {
  const events: { at: number; data: Record<string, unknown> }[] = [];
  let buf = "";
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    buf += chunk.replaceAll("\r\n", "\n");
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) events.push({ at: performance.now(), data: JSON.parse(data) });
    }
  }
  return events;
}

/** The banner's curl lines, done with fetch. */
async function exerciseDemo(proc: Proc): Promise<void> {
  const { mcpUrl, token } = await readBanner(proc);

  // curl -i … initialize
  const init = await rpc(mcpUrl, token, {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dist-test", version: "1" } },
  });
  assertEquals(init.status, 200);
  const session = init.headers.get("mcp-session-id");
  assert(session, "initialize returns Mcp-Session-Id");
  const initBody = await init.json();
  assertEquals(initBody.result.serverInfo.name, "mcp-gate-demo");

  const initialized = await rpc(mcpUrl, token, { jsonrpc: "2.0", method: "notifications/initialized" }, session);
  assertEquals(initialized.status, 202);
  await initialized.body?.cancel();

  const list = await rpc(mcpUrl, token, { jsonrpc: "2.0", id: 2, method: "tools/list" }, session);
  const names = (await list.json()).result.tools.map((t: { name: string }) => t.name);
  assertEquals(names.toSorted(), ["countdown", "echo", "whoami"]);

  // The countdown streams progress while it runs: 4 steps, 300 ms apart.
  const t0 = performance.now();
  const countdown = await rpc(mcpUrl, token, {
    jsonrpc: "2.0",
    id: 3,
    method: "tools/call",
    params: { name: "countdown", arguments: { count: 4, delay_ms: 300 }, _meta: { progressToken: "pt-1" } },
  }, session);
  assertEquals(countdown.status, 200);
  assertStringIncludes(countdown.headers.get("content-type") ?? "", "text/event-stream");
  const events = await readEvents(countdown);
  const progress = events.filter((e) => e.data.method === "notifications/progress");
  const result = events.find((e) => e.data.id === 3);
  assertEquals(progress.map((e) => (e.data.params as { progress: number }).progress), [1, 2, 3, 4]);
  assert(result, "the result follows the progress");
  assertEquals((result.data.result as { content: { text: string }[] }).content[0]!.text, "Liftoff after 4 steps");
  // Incremental: the first progress came ~900 ms before the result, not in one burst at the end.
  assertGreater(result.at - progress[0]!.at, 500, "progress arrived incrementally");
  assertGreater(progress[0]!.at - t0, 150, "the first step waited its delay");

  const whoami = await rpc(mcpUrl, token, {
    jsonrpc: "2.0",
    id: 4,
    method: "tools/call",
    params: { name: "whoami", arguments: {} },
  }, session);
  const identity = JSON.parse((await whoami.json()).result.content[0].text);
  assertEquals(identity.subject, "demo-user");
  assertEquals(identity.authorization_header_reached_server, false, "the token is not passed upstream");

  // curl -i -X POST <url>: the challenge a client follows.
  const anon = await rpc(mcpUrl, null, { jsonrpc: "2.0", id: 5, method: "tools/list" });
  assertEquals(anon.status, 401);
  await anon.body?.cancel();
  const challenge = anon.headers.get("www-authenticate") ?? "";
  assertStringIncludes(
    challenge,
    `resource_metadata="${new URL(mcpUrl).origin}/.well-known/oauth-protected-resource/mcp"`,
  );
  const prm = await fetch(`${new URL(mcpUrl).origin}/.well-known/oauth-protected-resource/mcp`);
  assertEquals((await prm.json()).resource, mcpUrl);

  const del = await fetch(mcpUrl, {
    method: "DELETE",
    headers: { authorization: `Bearer ${token}`, "mcp-session-id": session },
  });
  assertEquals(del.status, 204);
}

interface DemoTarget {
  name: string;
  argv: () => Promise<string[]>;
  env?: Record<string, string>;
}

const targets: DemoTarget[] = [
  { name: "deno", argv: () => Promise.resolve([DENO, "run", "--allow-net", "--allow-env", "mod.ts", "demo"]) },
  { name: "bun", argv: () => Promise.resolve([BUN, "run", "mod.ts", "demo"]) },
  { name: "binary", argv: async () => [(await artifacts()).binary, "demo"] },
];

for (const target of targets) {
  Deno.test(`demo [${target.name}]: banner, initialize, streamed countdown, 401, clean stop`, async () => {
    await using proc = spawn(await target.argv(), { env: { LISTEN_ADDR: "127.0.0.1:0" } });
    await exerciseDemo(proc);
    assertEquals(await proc.stop("SIGTERM"), 0, proc.describe());
    assert(proc.lines.every((l) => l.startsWith("{")), `stdout is JSON lines only\n${proc.describe()}`);
  });
}

Deno.test("demo [bundle from a URL, empty DENO_DIR]: banner, initialize, streamed countdown, 401, clean stop", async () => {
  const { dir } = await artifacts();
  const files = serveDir(dir);
  try {
    await using denoDir = await tempDir("mcp-gate-deno-dir-");
    const argv = [
      DENO,
      "run",
      "--unstable-no-legacy-abort",
      "--allow-net",
      "--allow-env",
      `${files.url}mcp-gate.js`,
      "demo",
    ];
    await using proc = spawn(argv, { env: { LISTEN_ADDR: "127.0.0.1:0", DENO_DIR: denoDir.path } });
    await exerciseDemo(proc);
    assertEquals(await proc.stop("SIGTERM"), 0, proc.describe());
    assert(!proc.stderr.includes("legacy"), `no Deno.serve legacy-abort warning\n${proc.describe()}`);
  } finally {
    await files.close();
  }
});

Deno.test("demo: an MCP client can complete OAuth (DCR, PKCE S256, auto-approve) against the demo issuer", async () => {
  await using proc = spawn([DENO, "run", "--allow-net", "--allow-env", "mod.ts", "demo"], {
    env: { LISTEN_ADDR: "127.0.0.1:0" },
  });
  const { mcpUrl, issuer } = await readBanner(proc);

  // Discovery, as a client does it: 401 → PRM → AS metadata.
  const prm = await (await fetch(`${new URL(mcpUrl).origin}/.well-known/oauth-protected-resource/mcp`)).json();
  assertEquals(prm.authorization_servers, [issuer]);
  const meta = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
  assertEquals(meta.code_challenge_methods_supported, ["S256"]);

  const redirectUri = "http://127.0.0.1:6274/oauth/callback";
  const reg = await fetch(meta.registration_endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      redirect_uris: [redirectUri],
      client_name: "dist-test",
      token_endpoint_auth_method: "none",
    }),
  });
  assertEquals(reg.status, 201);
  const { client_id } = await reg.json();

  const verifier = "v".repeat(20) + crypto.randomUUID() + crypto.randomUUID();
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const challenge = btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const authorize = new URL(meta.authorization_endpoint);
  for (
    const [k, v] of Object.entries({
      response_type: "code",
      client_id,
      redirect_uri: redirectUri,
      code_challenge: challenge,
      code_challenge_method: "S256",
      state: "st-1",
      scope: prm.scopes_supported.join(" "),
      resource: mcpUrl,
    })
  ) authorize.searchParams.set(k, v);
  const approved = await fetch(authorize, { redirect: "manual" });
  assertEquals(approved.status, 302);
  const back = new URL(approved.headers.get("location")!);
  assertEquals(back.searchParams.get("state"), "st-1");
  assertEquals(back.searchParams.get("iss"), issuer);
  const code = back.searchParams.get("code")!;

  const exchange = (verifierToSend: string) =>
    fetch(meta.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: redirectUri,
        client_id,
        code_verifier: verifierToSend,
        resource: mcpUrl,
      }),
    });
  const tokenRes = await exchange(verifier);
  assertEquals(tokenRes.status, 200);
  const { access_token } = await tokenRes.json();
  const replay = await exchange(verifier);
  assertEquals(replay.status, 400, "a code is single-use");
  await replay.body?.cancel();

  const init = await rpc(mcpUrl, access_token, {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "oauth", version: "1" } },
  });
  assertEquals(init.status, 200);
  assertEquals((await init.json()).result.protocolVersion, "2025-06-18");
  assertEquals(await proc.stop("SIGINT"), 0, proc.describe());
});

Deno.test("demo: refuses a non-loopback LISTEN_ADDR; plain `serve` never starts the demo", async () => {
  await using wide = spawn([DENO, "run", "--allow-net", "--allow-env", "mod.ts", "demo"], {
    env: { LISTEN_ADDR: "0.0.0.0:0" },
  });
  assertEquals(await wide.exited(), 2, wide.describe());
  assertStringIncludes(wide.stderr, "loopback");

  await using plain = spawn([DENO, "run", "--allow-net", "--allow-env", "mod.ts"], { env: {} });
  assertEquals(await plain.exited(), 1, plain.describe());
  assert(!plain.stderr.includes("DEMO"), plain.describe());
});

Deno.test("demo [binary]: the official MCP SDK client (Node) completes OAuth against it and sees progress", async () => {
  const { binary } = await artifacts();
  await using demo = spawn([binary, "demo"], { env: { LISTEN_ADDR: "127.0.0.1:0" } });
  const { mcpUrl } = await readBanner(demo);

  await using client = spawn(["node", "tests/dist/fixtures/sdk_oauth_client.mjs", mcpUrl]);
  assertEquals(await client.exited(30_000), 0, client.describe());
  const events = client.lines.map((l) => JSON.parse(l));
  const find = (name: string) => events.find((e) => e.event === name);
  assert(find("registered")?.client_id, client.describe());
  assertEquals(find("authorized")?.status, 302);
  assertEquals(find("authorized")?.resource, mcpUrl, "the SDK asks for a token for this resource (RFC 8707)");
  assertEquals(find("connected")?.server, "mcp-gate-demo");
  const progress = events.filter((e) => e.event === "progress");
  assertEquals(progress.map((e) => e.progress), [1, 2, 3]);
  assertGreater(find("result").ms - progress[0].ms, 300, "progress arrived while the tool ran");
  assertEquals(await demo.stop(), 0, demo.describe());
});
