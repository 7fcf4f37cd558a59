/** The Markdown table and the check of issue 13's targets. */
import type { machineInfo } from "./common.ts";
import { Root } from "./common.ts";
import type { Feature } from "./features.ts";
import type { LatencyResult, RowResult, sseRow } from "./measure.ts";
import type { Options } from "./options.ts";

export interface TargetResult {
  key: string;
  label: string;
  auth: boolean;
  /** Throughput rows, main and feature rows, by key. */
  rows: Record<string, RowResult | undefined>;
  latency?: LatencyResult;
  ssePaced?: Awaited<ReturnType<typeof sseRow>>;
  sseBurst?: Awaited<ReturnType<typeof sseRow>>;
  rssMiB?: number;
  /** Peak RSS before the fixed-rate row (a runtime that falls behind queues requests there). */
  rssAfterWrkMiB?: number;
  startMs?: number;
  startRuns?: number[];
  logBytes?: number;
  error?: string;
  /** A feature row that failed: key → message. */
  featureErrors?: Record<string, string>;
}

export const fmtRate = (x: number) =>
  !Number.isFinite(x)
    ? "—"
    : x >= 10_000
    ? `${(x / 1000).toFixed(1)}k`
    : x >= 1000
    ? `${(x / 1000).toFixed(2)}k`
    : x.toFixed(0);
export const fmtMs = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? "—" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
export const fmtRatio = (x: number) => (!Number.isFinite(x) ? "—" : x >= 10 ? x.toFixed(0) : x.toFixed(2));

/** The throughput rows in table order: [key, label]. */
export const MainRows: [string, string][] = [
  ["validRs", "valid RS256, pool of 256 (req/s)"],
  ["validEs", "valid ES256, pool of 256 (req/s)"],
  ["cold", "cold RS256, every token new (req/s)"],
  ["flood", "bad-signature flood, every token new (req/s)"],
  ["badReplay", "bad signature, pool of 256 replayed (req/s)"],
];

const finite = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);

interface Refs {
  direct: TargetResult | undefined;
  hap: TargetResult | undefined;
}

/** A figure with its ratios: to DIRECT (D), to HAProxy (H), to the same column's plain valid row (P). */
function cell(
  value: string,
  v: number,
  refs: { d?: number | undefined; h?: number | undefined; p?: number | undefined },
  note?: string,
): string {
  const parts: string[] = [];
  if (finite(refs.d) && Number.isFinite(v)) parts.push(`${fmtRatio(v / refs.d)} D`);
  if (finite(refs.h) && Number.isFinite(v)) parts.push(`${fmtRatio(v / refs.h)} H`);
  if (finite(refs.p) && Number.isFinite(v)) parts.push(`${fmtRatio(v / refs.p)} P`);
  return `${value}${parts.length ? ` (${parts.join(", ")})` : ""}${note ? ` ⚠ ${note}` : ""}`;
}

function throughputLine(key: string, name: string, cols: TargetResult[], refs: Refs, feature: boolean): string {
  const d = feature ? undefined : refs.direct?.rows[key]?.value;
  const h = refs.hap?.rows[feature ? "validRs" : key]?.value;
  return `| ${name} | ${
    cols.map((c) => {
      const r = c.rows[key];
      if (!r) return c.featureErrors?.[key] ? "error" : c.error && !feature ? "error" : "—";
      const sp = Number.isFinite(r.spread) ? `±${Math.round(r.spread * 100)}%` : "";
      const noAuth = !c.auth && c !== refs.direct && (key === "flood" || key === "badReplay")
        ? " (no auth: proxied)"
        : "";
      return cell(`${fmtRate(r.value)}${sp}${noAuth}`, r.value, {
        d: c === refs.direct ? undefined : d,
        h: c === refs.hap ? undefined : h,
        p: feature ? (c.rows[`${key}Plain`] ?? c.rows.validRs)?.value : undefined,
      }, r.note);
    }).join(" | ")
  } |`;
}

function msLine(
  label: string,
  cols: TargetResult[],
  refs: Refs,
  pick: (r: TargetResult) => number | undefined,
  note?: (r: TargetResult) => string | undefined,
): string {
  const d = refs.direct ? pick(refs.direct) : undefined;
  const h = refs.hap ? pick(refs.hap) : undefined;
  return `| ${label} | ${
    cols.map((c) => {
      const v = pick(c);
      if (!finite(v)) return "—";
      return cell(`${fmtMs(v)} ms`, v, {
        d: c === refs.direct ? undefined : d,
        h: c === refs.hap ? undefined : h,
      }, note?.(c));
    }).join(" | ")
  } |`;
}

function resourceLines(cols: TargetResult[], refs: Refs): string[] {
  const hap = refs.hap;
  return [
    `| peak RSS | ${
      cols.map((c) =>
        c.rssMiB === undefined
          ? "—"
          : cell(`${c.rssMiB.toFixed(1)} MiB`, c.rssMiB, { h: c === hap ? undefined : hap?.rssMiB }) +
            (c.rssAfterWrkMiB !== undefined && c.rssAfterWrkMiB < c.rssMiB * 0.9
              ? ` (${c.rssAfterWrkMiB.toFixed(1)} before the fixed-rate row)`
              : "")
      ).join(" | ")
    } |`,
    `| start to first 200 | ${
      cols.map((c) =>
        c.startMs === undefined
          ? "—"
          : cell(`${fmtMs(c.startMs)} ms`, c.startMs, { h: c === hap ? undefined : hap?.startMs })
      ).join(" | ")
    } |`,
  ];
}

/**
 * CPU µs per request of each system under test (user + system, all its threads): the
 * figure that other work on the machine disturbs least, for comparisons across runs.
 */
function cpuTable(results: TargetResult[], features: Feature[]): string {
  const cols = results.filter((r) => r.key !== "direct");
  const header = ["CPU µs per request", ...cols.map((c) => c.label)];
  const rows = [...MainRows, ...features.map((f) => [f.key, f.label] as [string, string])];
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? ":--" : "--:")).join("|")}|`,
    ...rows.filter(([key]) => cols.some((c) => c.rows[key]?.cpuUs !== undefined)).map(([key, name]) =>
      `| ${name.replace(" (req/s)", "")} | ${
        cols.map((c) => {
          const v = c.rows[key]?.cpuUs;
          return finite(v) ? v.toFixed(0) : "—";
        }).join(" | ")
      } |`
    ),
  ].join("\n");
}

export function renderTable(
  results: TargetResult[],
  info: Awaited<ReturnType<typeof machineInfo>>,
  o: Options,
  pinned: string,
  features: Feature[],
) {
  const refs: Refs = {
    direct: results.find((r) => r.key === "direct"),
    hap: results.find((r) => r.key === "haproxy"),
  };
  const header = ["", ...results.map((c) => c.label)];
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? ":--" : "--:")).join("|")}|`,
    ...MainRows.map(([key, name]) => throughputLine(key, name, results, refs, false)),
    ...features.map((f) => throughputLine(f.key, f.label, results, refs, true)),
    msLine(`p50 at ${o.rate}/s fixed rate`, results, refs, (r) => r.latency?.p50, (r) => r.latency?.note),
    msLine(`p99 at ${o.rate}/s fixed rate`, results, refs, (r) => r.latency?.p99, (r) => r.latency?.note),
    msLine("SSE time to first event", results, refs, (r) => r.ssePaced?.first),
    msLine("SSE 1,000 events, 1 ms apart", results, refs, (r) => r.ssePaced?.all),
    msLine("SSE 1,000 events, burst", results, refs, (r) => r.sseBurst?.all),
    ...resourceLines(results, refs),
  ];
  const meta = [
    `${info.model}, ${info.cores} cores; ${pinned}`,
    ...(o.src !== Root.replace(/\/$/, "") ? [`mcp-gate targets run from ${o.src}`] : []),
    ...(o.src2 ? [`(B) targets run from ${o.src2}`] : []),
    `Deno ${info.deno}, Bun ${info.bun}, nginx ${info.nginx}, HAProxy ${info.haproxy}, wrk ${info.wrk}, Linux ${info.kernel}`,
    `wrk -t1 -c${o.connections}, ${o.repeats}× ${o.duration} s per row after ${o.warmup} s of warm-up, median shown (±: half the range); ` +
    `fixed rate: ${o.repeats}× ${o.latencySeconds} s at ${o.rate}/s over ${o.connections} connections, open loop; ` +
    `SSE: median of 5 (1 ms apart) and of 20 (burst) streams; start: median of ${o.startups}`,
    ...(features.length
      ? [
        `feature rows (${features.map((f) => f.key).join(", ")}): each in a gateway of its own with only that ` +
        `feature on, ${o.repeats}× ${o.duration} s after 1 s of warm-up, interleaved run by run with a plain gateway of the ` +
        `same form started beside it; P: ratio to that plain gateway's valid RS256 runs`,
      ]
      : []),
    `(x D, y H): ratio to DIRECT and to HAProxy in this run (req/s: higher is better; ms and MiB: lower is better); ` +
    `load average at the start: ${info.load}`,
  ];
  return { table: lines.join("\n"), cpu: cpuTable(results, features), meta };
}

export interface TargetCheck {
  text: string;
  met: boolean | undefined;
}

const ratio = (a: number | undefined, b: number | undefined) => finite(a) && finite(b) && b > 0 ? a / b : NaN;

/** Issue 13's targets (binary form, access log and metrics on), plus the start-up goal of the first pass. */
export function checkTargets(results: TargetResult[]): TargetCheck[] {
  const get = (k: string) => results.find((r) => r.key === k);
  const d = get("direct"), h = get("haproxy"), bin = get("binary"), deno = get("deno");
  const out: TargetCheck[] = [];
  const add = (text: string, value: number, goal: number, higherBetter: boolean, unit = "×", extra = "") => {
    const met = Number.isFinite(value) ? (higherBetter ? value >= goal : value <= goal) : undefined;
    const shown = Number.isFinite(value) ? value.toFixed(2) : "—";
    out.push({ text: `${text}: ${shown}${unit} (goal ${higherBetter ? "≥" : "≤"} ${goal}${unit}${extra})`, met });
  };
  add(
    "binary req/s on valid RS256 ÷ HAProxy",
    ratio(bin?.rows.validRs?.value, h?.rows.validRs?.value),
    1.0,
    true,
    "×",
    "; compass 1.5×",
  );
  add(
    "binary req/s on the bad-signature flood ÷ HAProxy",
    ratio(bin?.rows.flood?.value, h?.rows.flood?.value),
    0.8,
    true,
    "×",
    "; compass 1.0×",
  );
  add("binary p99 at the fixed rate ÷ HAProxy's", ratio(bin?.latency?.p99, h?.latency?.p99), 1.0, false);
  add("binary SSE 1,000 events (1 ms apart) ÷ DIRECT", ratio(bin?.ssePaced?.all, d?.ssePaced?.all), 1.05, false);
  add("binary SSE 1,000 events (burst) ÷ DIRECT", ratio(bin?.sseBurst?.all, d?.sseBurst?.all), 1.05, false);
  const first = finite(bin?.ssePaced?.first) && finite(d?.ssePaced?.first)
    ? bin.ssePaced.first - d.ssePaced.first
    : NaN;
  add("binary SSE time to first event − DIRECT's", first, 0.5, false, " ms");
  for (const k of ["binary", "bun"]) {
    const r = get(k);
    if (r?.rssMiB !== undefined) add(`${r.label} peak RSS`, r.rssMiB, 64, false, " MiB");
  }
  add("Deno req/s on valid RS256 ÷ HAProxy", ratio(deno?.rows.validRs?.value, h?.rows.validRs?.value), 0.5, true);
  if (bin?.rows.scopeRules) {
    add(
      "binary SCOPE_RULES (10 rules) row ÷ its plain valid RS256 row",
      ratio(bin.rows.scopeRules.value, (bin.rows.scopeRulesPlain ?? bin.rows.validRs)?.value),
      0.9,
      true,
    );
  }
  add("binary start to first 200", bin?.startMs ?? NaN, 50, false, " ms");
  return out;
}
