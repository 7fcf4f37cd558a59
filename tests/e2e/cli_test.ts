// Spec §1 (configuration problems reported together) and §6 (healthcheck subcommand).
import { assert, assertEquals, assertNotEquals, assertStringIncludes } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { closedPort, startUpstream } from "../_helpers/upstream.ts";
import { gatewayEnv, gatewayTargets, runGatewayCommand, startGateway } from "../_helpers/gateway.ts";

function assertJsonLines(stdout: string) {
  const bad = stdout.split("\n").filter((l) => l.trim() !== "").filter((l) => {
    try {
      const v = JSON.parse(l);
      return typeof v !== "object" || v === null || Array.isArray(v);
    } catch {
      return true;
    }
  });
  assertEquals(bad, [], "every stdout line is a JSON object");
}

for (const target of gatewayTargets()) {
  Deno.test(`gateway reports every configuration problem at once and exits non-zero [${target.name}]`, async () => {
    const { code, stdout, stderr } = await runGatewayCommand(target, [], {
      LISTEN_ADDR: "127.0.0.1:0",
      METRICS_ADDR: "",
      RESOURCE_URI: "not a url",
      AUTHORIZATION_SERVER: "http://127.0.0.1:9/issuer",
      JWKS_URI: "http://127.0.0.1:9/jwks",
      CLOCK_SKEW: "soon",
      UPSTREAM_TIMEOUT: "-5s",
    });
    assertNotEquals(code, 0, "exit code");
    assertJsonLines(stdout);
    const all = stdout + stderr;
    for (const name of ["UPSTREAM_URL", "RESOURCE_URI", "CLOCK_SKEW", "UPSTREAM_TIMEOUT"]) {
      assertStringIncludes(all, name, `the problem with ${name} is reported`);
    }
    for (const seen of ["not a url", "soon", "-5s"]) assertStringIncludes(all, seen, `the value ${seen} is quoted`);
    assert(!all.includes("listening"), "it never started listening");
  });

  Deno.test(`gateway healthcheck subcommand exits 0 when /healthz answers, 1 otherwise [${target.name}]`, async () => {
    await using issuer = await startIssuer();
    await using upstream = await startUpstream();
    await using gw = await startGateway(target, gatewayEnv(issuer, upstream));
    const env = { ...gatewayEnv(issuer, upstream), LISTEN_ADDR: `127.0.0.1:${gw.port}` };
    assertEquals((await runGatewayCommand(target, ["healthcheck"], env)).code, 0, "healthy gateway");
    const down = { ...env, LISTEN_ADDR: `127.0.0.1:${closedPort()}` };
    assertEquals((await runGatewayCommand(target, ["healthcheck"], down)).code, 1, "nothing listening");
    await gw.stopAndCheck(issuer.issued);
  });
}
