// rediss:// from the real command line on Deno and Bun: the server's certificate is
// verified against the system store (SSL_CERT_FILE stands in for a CA installed in
// /etc/ssl/certs), and refused when no trusted CA signed it.
import { assertMatch } from "@std/assert";
import { REPO_ROOT, runGatewayCommand, type Target } from "../_helpers/gateway.ts";
import { makeCertificates, startRedis } from "../_helpers/redis_server.ts";

Deno.test("mcp-gate check over rediss://: trusted through the system store, refused without it", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-gate-tls-" });
  try {
    const certs = await makeCertificates(dir);
    const password = `pw-${crypto.randomUUID()}`;
    await using redis = await startRedis({ password, tls: certs });
    const env = {
      UPSTREAM_URL: "http://127.0.0.1:9",
      RESOURCE_URI: "https://mcp.example.test/mcp",
      AUTHORIZATION_SERVER: "http://127.0.0.1:9",
      JWKS_URI: "http://127.0.0.1:9/jwks",
      JWKS_FETCH_TIMEOUT: "1s",
      REDIS_URL: `rediss://:${password}@localhost:${redis.port}`,
    };
    const where = `rediss://:\\*\\*\\*@localhost:${redis.port}/0`;
    // From source on both runtimes, whatever MCPGATE_TEST_TARGETS says: the TLS code is the same in every form.
    const targets: Target[] = [
      { name: "deno", cmd: [Deno.execPath(), "run", "-A", "mod.ts"] },
      { name: "bun", cmd: [`${REPO_ROOT}node_modules/.bin/bun`, "run", "mod.ts"] },
    ];
    for (const target of targets) {
      await t.step(`${target.name}: verified against the system store`, async () => {
        const ok = await runGatewayCommand(target, ["check"], { ...env, SSL_CERT_FILE: certs.ca });
        assertMatch(ok.stdout, new RegExp(`✓ Redis at ${where} accepted the configured credentials`));
      });
      await t.step(`${target.name}: a certificate no trusted CA signed is refused`, async () => {
        const refused = await runGatewayCommand(target, ["check"], env);
        assertMatch(refused.stdout, new RegExp(`✗ Redis at ${where} did not answer PING \\(self.signed certificate`));
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
