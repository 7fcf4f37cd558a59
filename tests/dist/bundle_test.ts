// The single-module bundle (scripts/build.ts bundle), run the way users run it: from a URL
// on a loopback HTTP server, with an empty Deno cache, from a directory whose deno.json,
// package.json and .env must all be ignored.
import { assert, assertEquals, assertMatch } from "@std/assert";
import { serveDir } from "../../scripts/serve_dist.ts";
import { Version } from "../../src/version.ts";
import {
  artifacts,
  DENO,
  gatewayEnv,
  get,
  hostileCwd,
  listeningUrl,
  REPO_ROOT,
  spawn,
  startJwks,
  tempDir,
  until200,
} from "./_dist.ts";

Deno.test("bundle: one module whose only imports are node: built-ins (hono and jose inlined)", async () => {
  const { bundle } = await artifacts();
  const out = await new Deno.Command(DENO, { args: ["info", "--no-config", "--json", bundle] }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const others = (info.modules as { specifier: string }[])
    .map((m) => m.specifier)
    .filter((s) => !s.startsWith("node:") && !s.endsWith("/mcp-gate.js"));
  assertEquals(others, []);
  const text = await Deno.readTextFile(bundle);
  assert(text.includes("node_modules/hono/") && text.includes("node_modules/jose/"), "hono and jose are inlined");
});

const flagSets = {
  "documented minimum (--unstable-no-legacy-abort --allow-net --allow-env)": [
    "--unstable-no-legacy-abort",
    "--allow-net",
    "--allow-env",
  ],
  "the issue's command (--allow-net --allow-env --allow-read)": ["--allow-net", "--allow-env", "--allow-read"],
};

for (const [name, flags] of Object.entries(flagSets)) {
  Deno.test(`bundle: runs from a URL with an empty DENO_DIR, ${name}`, async () => {
    const { dir } = await artifacts();
    const files = serveDir(dir);
    try {
      await using denoDir = await tempDir("mcp-gate-deno-dir-");
      await using cwd = await hostileCwd();
      await using jwks = await startJwks();
      const env = { ...gatewayEnv(jwks), DENO_DIR: denoDir.path, DENO_NO_UPDATE_CHECK: "1" };

      await using gw = spawn([DENO, "run", ...flags, `${files.url}mcp-gate.js`], { cwd: cwd.path, env });
      const url = await listeningUrl(gw, 30_000);
      assertEquals(files.requests, ["/mcp-gate.js"], "the module was downloaded, once");

      assertEquals((await get(`${url}/healthz`)).status, 200);
      const prm = await get(`${url}/.well-known/oauth-protected-resource`);
      assertEquals(prm.status, 200);
      assertEquals(JSON.parse(prm.text).resource, "https://mcp.example.test/mcp");
      assertEquals(JSON.parse(prm.text).authorization_servers, [jwks.issuer]);
      await until200(`${url}/readyz`);

      const started = await gw.waitForLog((l) => l.msg === "listening");
      assertEquals(started.version, Version);
      assertMatch(String(started.runtime), /^deno /);
      assertEquals(await gw.stop(), 0, gw.describe());
      assert(gw.lines.every((l) => l.startsWith("{")), `stdout is JSON lines only\n${gw.describe()}`);
      assert(!gw.stderr.includes("bogus") && !gw.lines.join("").includes("bogus"), gw.describe());
    } finally {
      await files.close();
    }
  });
}

Deno.test("scripts/run_bundle_url.sh: serves dist/, execs the gateway from its URL, cleans up", async () => {
  const { dir } = await artifacts();
  await using tmp = await tempDir("mcp-gate-runurl-");
  const env = { MCPGATE_DIST_DIR: dir, DENO: DENO, TMPDIR: tmp.path };

  await using version = spawn(["bash", `${REPO_ROOT}scripts/run_bundle_url.sh`, "--version"], { env });
  assertEquals(await version.exited(30_000), 0, version.describe());
  assertMatch(version.lines.join("\n"), new RegExp(`^mcp-gate ${Version.replaceAll(".", "\\.")} \\(deno `));

  await using jwks = await startJwks();
  await using gw = spawn(["bash", `${REPO_ROOT}scripts/run_bundle_url.sh`], { env: { ...env, ...gatewayEnv(jwks) } });
  const url = await listeningUrl(gw, 30_000);
  assertEquals((await get(`${url}/healthz`)).status, 200);
  assertEquals(await gw.stop("SIGTERM"), 0, gw.describe());

  // The static server and the temporary DENO_DIR go once the gateway has gone.
  const deadline = Date.now() + 5_000;
  let left: string[] = [];
  do {
    await new Promise((r) => setTimeout(r, 200));
    left = [];
    for await (const e of Deno.readDir(tmp.path)) left.push(e.name);
  } while (left.length > 0 && Date.now() < deadline);
  assertEquals(left, [], "temporary files left behind");
});
