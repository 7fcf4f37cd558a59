// The official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, every
// server scenario) against a real SDK server, once directly and once through the gateway
// under each target; every check that passes directly must pass through the gateway.
//
// Protocol revisions: the suite's scenarios are tagged 2025-06-18 and/or 2025-11-25; it
// has none for 2026-07-28 (its "draft" tag holds only client-side auth scenarios), and
// its SDK client always offers 2025-11-25. So the suite runs twice per side: as is
// (2025-11-25, all 32 scenarios) and with the client pinned to 2025-06-18 (the scenarios
// tagged 2025-06-18). The parity probes (_probes.ts) add what the suite lacks: header
// validation, including MCP-Protocol-Version 2026-07-28, and SSE resumption.
//
// Run: deno test -A --import-map tests/offline_import_map.json tests/conformance/
import { assert, assertEquals, assertGreater, assertStringIncludes } from "@std/assert";
import { startIssuer } from "../_helpers/issuer.ts";
import { Gateway, gatewayEnv, gatewayTargets } from "../_helpers/gateway.ts";
import { Proc, stopAll } from "../interop/_lib.ts";
import {
  type Check,
  compareRuns,
  ensureNode22,
  notPassingDirectly,
  readResults,
  RESULTS_ROOT,
  runSuite,
  type SuiteResults,
  table,
  tally,
  UPSTREAM_FIXTURE,
} from "./_suite.ts";
import { runProbes } from "./_probes.ts";

const check = (id: string, status: Check["status"], errorMessage?: string): Check => ({
  id,
  status,
  ...(errorMessage ? { errorMessage } : {}),
});

Deno.test("compareRuns() reports each check that passes directly but not through the gateway", () => {
  const direct: SuiteResults = new Map([
    ["ping", [check("ping", "SUCCESS")]],
    ["multi", [check("a", "SUCCESS"), check("a", "SUCCESS"), check("b", "WARNING"), check("c", "FAILURE")]],
    ["gone", [check("x", "SUCCESS")]],
  ]);
  const gateway: SuiteResults = new Map([
    ["ping", [check("ping", "FAILURE", "HTTP 401")]],
    ["multi", [check("a", "SUCCESS"), check("a", "WARNING"), check("b", "FAILURE"), check("c", "FAILURE")]],
  ]);
  assertEquals(compareRuns(direct, gateway), [
    { scenario: "ping", check: "ping", direct: "SUCCESS", gateway: "FAILURE", error: "HTTP 401" },
    { scenario: "multi", check: "a", direct: "SUCCESS", gateway: "WARNING", error: undefined },
    { scenario: "gone", check: "x", direct: "SUCCESS", gateway: "missing", error: undefined },
  ]);
  assertEquals(compareRuns(direct, direct), []);
});

Deno.test("readResults() records a scenario that wrote no checks.json as one failure", async () => {
  const dir = await Deno.makeTempDir({ dir: `${Deno.cwd()}/.tmp` }).catch(() => Deno.makeTempDir());
  try {
    await Deno.mkdir(`${dir}/server-ping-2026-01-02T03-04-05-678Z`);
    await Deno.writeTextFile(
      `${dir}/server-ping-2026-01-02T03-04-05-678Z/checks.json`,
      JSON.stringify([check("ping", "SUCCESS")]),
    );
    const stdout = "=== SUMMARY ===\n✓ ping: 1 passed, 0 failed\n✗ tools-list: 0 passed, 1 failed\n";
    const r = await readResults(dir, stdout);
    assertEquals([...r.keys()].sort(), ["ping", "tools-list"]);
    assertEquals(r.get("tools-list")![0]!.status, "FAILURE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function figure(name: string, value: string) {
  console.log(`FIGURE ${name}: ${value}`);
}

function summary(r: SuiteResults): string {
  const t = tally(r);
  return `${t.success}/${t.success + t.failure} checks passed, ${t.warning} warnings, ${t.scenarios} scenarios`;
}

Deno.test("conformance suite: every check passing directly also passes through the gateway", async (t) => {
  const node = await ensureNode22();
  await using issuer = await startIssuer();
  const upstream = new Proc("everything_server", node, [UPSTREAM_FIXTURE, "--port", "0"]);
  try {
    const listening = await upstream.waitForLine((l) => l.event === "listening", 15_000, "listening line");
    const upstreamMcp = listening.url as string;
    const upstreamBase = new URL(upstreamMcp).origin;
    // Long enough for every run of this test; signed here, never printed.
    const token = await issuer.sign({ exp: Math.floor(Date.now() / 1000) + 3600 });
    const requests = () => upstream.lines.filter((l) => l.event === "request");
    const lastUpstreamMcpHeaders = () => (requests().at(-1)?.mcp_headers as string[] | undefined) ?? [];

    const runs = [
      { label: "2025-11-25", opts: {} },
      { label: "2025-06-18", opts: { pinProtocol: "2025-06-18", specVersion: "2025-06-18" } },
    ];
    const direct = new Map<string, SuiteResults>();
    await t.step("directly against the SDK server", async () => {
      for (const run of runs) {
        const mark = requests().length;
        const r = await runSuite({ url: upstreamMcp, label: `direct-${run.label}`, token, ...run.opts });
        direct.set(run.label, r.results);
        console.log(`direct, protocol ${run.label} (${Math.round(r.ms)} ms): ${summary(r.results)}`);
        figure(`conformance_direct_${run.label}`, summary(r.results));
        for (const { scenario, check } of notPassingDirectly(r.results)) {
          console.log(`  not passing directly: ${scenario} / ${check.id} ${check.status}: ${check.errorMessage ?? ""}`);
        }
        assertGreater(r.results.size, run.label === "2025-11-25" ? 30 : 20, `scenarios run\n${r.stdout}`);
        assertGreater(tally(r.results).success, 0);
        if (run.opts.pinProtocol) {
          const versions = new Set(requests().slice(mark).map((l) => l.protocol).filter((v) => v !== null));
          assertEquals([...versions], [run.opts.pinProtocol], "protocol versions the upstream saw in the pinned run");
        }
      }
    });

    for (const target of gatewayTargets()) {
      await t.step(`through the gateway [${target.name}]`, async (t) => {
        const gw = await Gateway.start(target, gatewayEnv(issuer, upstreamBase));
        try {
          const url = `${gw.url}/mcp`;
          for (const run of runs) {
            await t.step(`suite, protocol ${run.label}`, async () => {
              const mark = requests().length;
              const r = await runSuite({ url, label: `${target.name}-${run.label}`, token, ...run.opts });
              const base = direct.get(run.label)!;
              console.log(
                `gateway [${target.name}], protocol ${run.label} (${Math.round(r.ms)} ms):\n${table(base, r.results)}`,
              );
              figure(`conformance_gateway_${target.name}_${run.label}`, summary(r.results));
              assertEquals([...r.results.keys()].sort(), [...base.keys()].sort(), "same scenarios as directly");
              assertEquals(compareRuns(base, r.results), [], "checks that pass directly but fail through the gateway");
              assertGreater(r.preload.withToken, 0, "the preload added the token");
              const leaked = requests().slice(mark).filter((l) => l.authorization);
              assertEquals(leaked.length, 0, "requests that reached the upstream with an Authorization header");
            });
          }

          await t.step("without a token the suite cannot even initialize (401)", async () => {
            const r = await runSuite({ url, label: `${target.name}-no-token`, scenario: "server-initialize" });
            const checks = r.results.get("server-initialize") ?? [];
            assertEquals(checks.map((c) => c.status), ["FAILURE"], JSON.stringify(checks));
            assertStringIncludes(checks[0]!.errorMessage ?? "", `"error":"unauthorized"`);
            assertEquals(r.preload.withToken, 0);
          });

          await t.step("parity probes: sessions, header validation, progress, SSE resumption", async () => {
            const viaDirect = await runProbes({ url: upstreamMcp, token, lastUpstreamMcpHeaders });
            const mark = requests().length;
            const viaGateway = await runProbes({ url, token, lastUpstreamMcpHeaders });
            assertEquals(viaGateway, viaDirect, "what each probe observed, through the gateway vs directly");
            assertEquals(requests().slice(mark).filter((l) => l.authorization).length, 0, "no token upstream");
            figure(`conformance_parity_probes_${target.name}`, `${viaGateway.length}/${viaDirect.length} identical`);
          });
        } finally {
          await gw.stopAndCheck(issuer.issued);
        }
      });
    }
    console.log(`Results: ${RESULTS_ROOT}/<run>/server-<scenario>-<time>/checks.json`);
  } finally {
    await stopAll(upstream);
  }
  assert(upstream.exited !== undefined);
});
