// The single executable built by `bun build --compile` (scripts/build.ts compile): its
// command line, that it reads nothing from its working directory, and that Bun's own
// header limit was raised at build time so that MAX_HEADER_BYTES decides.
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { Variables } from "../../src/config.ts";
import { Version } from "../../src/version.ts";
import { artifacts, gatewayEnv, get, hostileCwd, listeningUrl, spawn, startJwks, until200 } from "./_dist.ts";

async function output(argv: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), cwd: cwd ?? ".", stdin: "null" }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("compiled binary: --version prints `mcp-gate <version>`", async () => {
  const { binary } = await artifacts();
  const { code, stdout } = await output([binary, "--version"]);
  assertEquals(code, 0);
  assertMatch(stdout.trim(), new RegExp(`^mcp-gate ${Version.replaceAll(".", "\\.")} \\(bun \\d+\\.\\d+\\.\\d+\\)$`));
});

Deno.test("compiled binary: --help lists the subcommands and every variable with its default", async () => {
  const { binary } = await artifacts();
  const { code, stdout } = await output([binary, "--help"]);
  assertEquals(code, 0);
  for (const command of ["serve", "healthcheck", "demo", "--version", "--help"]) {
    assertMatch(stdout, new RegExp(`^\\s+${command}\\s`, "m"), `--help lists ${command}`);
  }
  const lines = stdout.split("\n");
  for (const v of Variables) {
    const line = lines.find((l) => l.trim().startsWith(`${v.name} `));
    assert(line !== undefined, `--help lists ${v.name}`);
    if (v.default !== "") assertStringIncludes(line, v.default, `--help shows the default of ${v.name}`);
  }
});

Deno.test("compiled binary: reads no .env, bunfig.toml, package.json or tsconfig.json from its working directory", async () => {
  const { binary } = await artifacts();
  await using cwd = await hostileCwd();
  await using jwks = await startJwks();

  await using gw = spawn([binary], { cwd: cwd.path, env: gatewayEnv(jwks) });
  const url = await listeningUrl(gw);
  await until200(`${url}/readyz`);
  assertEquals((await get(`${url}/healthz`)).status, 200);
  assertEquals(await gw.stop(), 0, gw.describe());
  assert(!gw.stderr.includes("bogus") && !gw.lines.join("\n").includes("bogus"), gw.describe());
  assert(gw.lines.every((l) => l.startsWith("{")), `stdout is JSON lines only\n${gw.describe()}`);
  const preloaded = await Deno.stat(cwd.marker).then(() => true, () => false);
  assert(!preloaded, "bunfig.toml's preload ran");

  // --version and healthcheck must not trip over the same files either.
  const version = await output([binary, "--version"], cwd.path);
  assertEquals(version.code, 0, version.stderr);
});

Deno.test("compiled binary: a 40 KiB header reaches the gateway (Bun's 16 KiB default was raised at build time)", async () => {
  const { binary } = await artifacts();
  await using jwks = await startJwks();
  await using gw = spawn([binary], { env: gatewayEnv(jwks) });
  const url = await listeningUrl(gw);

  const big = (n: number) => ({ "x-filler": "a".repeat(n) });
  const ok = await get(`${url}/healthz`, big(40 * 1024));
  assertEquals(ok.status, 200, `40 KiB header: ${ok.text}`);
  const challenged = await get(`${url}/mcp`, big(40 * 1024));
  assertEquals(challenged.status, 401, "a 40 KiB header gets as far as the token check");

  // Over MAX_HEADER_BYTES (64 KiB): the gateway's own 431, with its JSON body, not Bun's empty one.
  const tooBig = await get(`${url}/mcp`, big(70 * 1024));
  assertEquals(tooBig.status, 431);
  assertStringIncludes(tooBig.text, "request_header_fields_too_large");
  const logged = await gw.waitForLog((l) => l.msg === "request" && l.status === 431, 3_000);
  assertEquals(logged.reason, "headers_too_large");

  // No warning that Bun's limit is below MAX_HEADER_BYTES: the baked-in limit covers the default.
  assert(!gw.lines.some((l) => l.includes("--max-http-header-size")), gw.describe());
  assertEquals(await gw.stop(), 0, gw.describe());
});
