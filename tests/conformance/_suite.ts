// Runs the official MCP conformance suite (@modelcontextprotocol/conformance, server
// scenarios) under Node 22 and reads its results; compares a direct run with a run
// through the gateway.
import { REPO_ROOT } from "../_helpers/gateway.ts";
import { runToEnd } from "../interop/_lib.ts";

export const SUITE_CLI = `${REPO_ROOT}node_modules/@modelcontextprotocol/conformance/dist/index.js`;
export const PRELOAD = `${REPO_ROOT}tests/conformance/fixtures/bearer_preload.mjs`;
export const UPSTREAM_FIXTURE = `${REPO_ROOT}tests/conformance/fixtures/everything_server.mjs`;
export const RESULTS_ROOT = `${REPO_ROOT}.tmp/conformance`;

export type Status = "SUCCESS" | "FAILURE" | "WARNING" | "INFO" | "SKIPPED";

export interface Check {
  id: string;
  name?: string;
  status: Status;
  errorMessage?: string;
  details?: Record<string, unknown>;
}

/** scenario name → its checks, in the order the suite reported them. */
export type SuiteResults = Map<string, Check[]>;

let node22: string | undefined;

/** Path of the pinned Node 22 (installed once by tests/conformance/node22.sh). */
export async function ensureNode22(): Promise<string> {
  if (node22) return node22;
  const r = await runToEnd("bash", [`${REPO_ROOT}tests/conformance/node22.sh`], 180_000);
  if (r.code !== 0) throw new Error(`node22.sh failed (${r.code}):\n${r.stderr}`);
  node22 = r.stdout.trim().split("\n").at(-1)!;
  return node22;
}

export interface RunOptions {
  /** The MCP endpoint under test. */
  url: string;
  /** Results go to RESULTS_ROOT/<label> (emptied first). */
  label: string;
  /** Access token the preload adds to every request to `url`'s origin; none: no header. */
  token?: string;
  /** Pin the protocol version the suite's client offers (see bearer_preload.mjs). */
  pinProtocol?: string;
  /** `--spec-version` filter; default: every scenario (`--suite all`). */
  specVersion?: string;
  /** Only this scenario. */
  scenario?: string;
  timeoutMs?: number;
}

export interface SuiteRun {
  results: SuiteResults;
  /** CLI exit code (non-zero when any check failed). */
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** What the preload did: requests seen and how many got the header (never the token). */
  preload: { fetch: number; undici: number; withToken: number; pinned: number };
}

/** Runs the suite's server scenarios once against `url`. */
export async function runSuite(opts: RunOptions): Promise<SuiteRun> {
  const node = await ensureNode22();
  const outDir = `${RESULTS_ROOT}/${opts.label}`;
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(outDir, { recursive: true });
  const statsFile = `${outDir}/preload.json`;
  const args = ["--import", PRELOAD, SUITE_CLI, "server", "--url", opts.url, "-o", outDir];
  if (opts.scenario) args.push("--scenario", opts.scenario);
  else args.push("--suite", "all");
  if (opts.specVersion) args.push("--spec-version", opts.specVersion);
  const env: Record<string, string> = {
    MCPGATE_BEARER_ORIGIN: new URL(opts.url).origin,
    MCPGATE_BEARER_TOKEN: opts.token ?? "",
    MCPGATE_PIN_PROTOCOL: opts.pinProtocol ?? "",
    MCPGATE_PRELOAD_STATS: statsFile,
    NO_COLOR: "1",
  };
  const r = await runToEnd(node, args, opts.timeoutMs ?? 240_000, env);
  const results = await readResults(outDir, r.stdout);
  const preload = JSON.parse(await Deno.readTextFile(statsFile).catch(() => "{}"));
  return { results, code: r.code, stdout: r.stdout, stderr: r.stderr, ms: r.ms, preload };
}

const ResultDir = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;
// deno-lint-ignore no-control-regex
const Ansi = /\x1b\[[0-9;]*m/g;

/**
 * Reads `server-<scenario>-<timestamp>/checks.json` files. A scenario that threw writes
 * no file; the CLI's summary line (`✗ name: 0 passed, 1 failed`) still names it, and it
 * is recorded as one FAILURE check so that it cannot vanish from the comparison.
 */
export async function readResults(dir: string, stdout: string): Promise<SuiteResults> {
  const results: SuiteResults = new Map();
  for await (const e of Deno.readDir(dir)) {
    const m = e.isDirectory ? ResultDir.exec(e.name) : null;
    if (!m) continue;
    results.set(m[1]!, JSON.parse(await Deno.readTextFile(`${dir}/${e.name}/checks.json`)));
  }
  for (const line of stdout.replace(Ansi, "").split("\n")) {
    const s = /^[✓✗] (\S+): \d+ passed, (\d+) failed$/.exec(line.trim());
    if (s && !results.has(s[1]!)) {
      const error = /Failed to run scenario[^\n]*\n[^\n]*/.exec(stdout)?.[0] ?? "scenario threw";
      results.set(s[1]!, [{ id: s[1]!, status: "FAILURE", errorMessage: `no checks.json: ${error}` }]);
    }
  }
  return results;
}

export interface Regression {
  scenario: string;
  check: string;
  direct: Status;
  gateway: Status | "missing";
  error?: string | undefined;
}

function statusesById(checks: Check[]): Map<string, Check[]> {
  const by = new Map<string, Check[]>();
  for (const c of checks) by.set(c.id, [...(by.get(c.id) ?? []), c]);
  return by;
}

/**
 * Every check that passes directly must pass through the gateway: per scenario and check
 * id, the gateway run needs at least as many SUCCESS results as the direct run.
 */
export function compareRuns(direct: SuiteResults, gateway: SuiteResults): Regression[] {
  const out: Regression[] = [];
  for (const [scenario, dChecks] of direct) {
    const gBy = statusesById(gateway.get(scenario) ?? []);
    for (const [id, dList] of statusesById(dChecks)) {
      const passed = dList.filter((c) => c.status === "SUCCESS").length;
      if (passed === 0) continue;
      const gList = gBy.get(id) ?? [];
      const gPassed = gList.filter((c) => c.status === "SUCCESS").length;
      if (gPassed < passed) {
        const bad = gList.find((c) => c.status !== "SUCCESS");
        out.push({
          scenario,
          check: id,
          direct: "SUCCESS",
          gateway: bad?.status ?? "missing",
          error: bad?.errorMessage,
        });
      }
    }
  }
  return out;
}

export interface Tally {
  scenarios: number;
  success: number;
  failure: number;
  warning: number;
}

export function tally(results: SuiteResults): Tally {
  const all = [...results.values()].flat();
  return {
    scenarios: results.size,
    success: all.filter((c) => c.status === "SUCCESS").length,
    failure: all.filter((c) => c.status === "FAILURE").length,
    warning: all.filter((c) => c.status === "WARNING").length,
  };
}

/** Checks that do not pass even directly (FAILURE or WARNING), with the suite's message. */
export function notPassingDirectly(results: SuiteResults): { scenario: string; check: Check }[] {
  const out: { scenario: string; check: Check }[] = [];
  for (const [scenario, checks] of results) {
    for (const c of checks) if (c.status === "FAILURE" || c.status === "WARNING") out.push({ scenario, check: c });
  }
  return out;
}

/** One line per scenario: "name  direct 5/5  gateway 5/5". */
export function table(direct: SuiteResults, gateway: SuiteResults): string {
  const names = [...new Set([...direct.keys(), ...gateway.keys()])];
  const w = Math.max(...names.map((n) => n.length));
  const cell = (r: SuiteResults, n: string) => {
    const cs = (r.get(n) ?? []).filter((c) => c.status === "SUCCESS" || c.status === "FAILURE");
    const warn = (r.get(n) ?? []).filter((c) => c.status === "WARNING").length;
    return `${cs.filter((c) => c.status === "SUCCESS").length}/${cs.length}${warn ? ` (${warn} warn)` : ""}`.padEnd(
      14,
    );
  };
  return names.map((n) => `  ${n.padEnd(w)}  direct ${cell(direct, n)} gateway ${cell(gateway, n)}`).join("\n");
}
