/**
 * The median of several `deno task bench` runs, figure by figure: each ratio is taken within
 * its own run (this machine drifts by up to ±40% between runs), then the median of those.
 *
 *   deno run -A bench/median.ts .tmp/bench/results/bench-A.json bench-B.json bench-C.json
 *
 * Prints one Markdown table: each issue-13 figure, its value in every run, the median, and
 * the goal met or missed.
 */
interface Row {
  value: number;
  cpuUs?: number;
}
interface Result {
  key: string;
  rows: Record<string, Row | undefined>;
  latency?: { p99: number };
  ssePaced?: { first: number; all: number };
  sseBurst?: { all: number };
  rssMiB?: number;
  startMs?: number;
}
interface Run {
  results: Result[];
}

const files = Deno.args;
if (files.length === 0) {
  console.error("usage: deno run -A bench/median.ts <bench-*.json>...");
  Deno.exit(2);
}
const runs: Run[] = files.map((f) => JSON.parse(Deno.readTextFileSync(f)));

type Figure = [
  name: string,
  goal: string,
  unit: string,
  higherIsBetter: boolean,
  limit: number,
  get: (r: Run) => number,
];

const of = (r: Run, key: string) => r.results.find((x) => x.key === key);
const ratio = (a: number | undefined, b: number | undefined) => a !== undefined && b ? a / b : NaN;

const figures: Figure[] = [
  [
    "binary, valid RS256 ÷ HAProxy",
    "≥ 1.0×",
    "×",
    true,
    1.0,
    (r) => ratio(of(r, "binary")?.rows.validRs?.value, of(r, "haproxy")?.rows.validRs?.value),
  ],
  [
    "binary, bad-signature flood ÷ HAProxy",
    "≥ 0.8×",
    "×",
    true,
    0.8,
    (r) => ratio(of(r, "binary")?.rows.flood?.value, of(r, "haproxy")?.rows.flood?.value),
  ],
  [
    "binary, p99 at the fixed rate ÷ HAProxy's",
    "≤ 1.0×",
    "×",
    false,
    1.0,
    (r) => ratio(of(r, "binary")?.latency?.p99, of(r, "haproxy")?.latency?.p99),
  ],
  [
    "binary, SSE 1,000 events 1 ms apart ÷ DIRECT",
    "≤ 1.05×",
    "×",
    false,
    1.05,
    (r) => ratio(of(r, "binary")?.ssePaced?.all, of(r, "direct")?.ssePaced?.all),
  ],
  [
    "binary, SSE 1,000 events burst ÷ DIRECT",
    "≤ 1.05×",
    "×",
    false,
    1.05,
    (r) => ratio(of(r, "binary")?.sseBurst?.all, of(r, "direct")?.sseBurst?.all),
  ],
  [
    "binary, SSE time to first event − DIRECT's",
    "≤ 0.5 ms",
    " ms",
    false,
    0.5,
    (r) => (of(r, "binary")?.ssePaced?.first ?? NaN) - (of(r, "direct")?.ssePaced?.first ?? NaN),
  ],
  ["binary, peak RSS", "≤ 64 MiB", " MiB", false, 64, (r) => of(r, "binary")?.rssMiB ?? NaN],
  ["Bun, peak RSS", "≤ 64 MiB", " MiB", false, 64, (r) => of(r, "bun")?.rssMiB ?? NaN],
  [
    "Deno, valid RS256 ÷ HAProxy",
    "≥ 0.5×",
    "×",
    true,
    0.5,
    (r) => ratio(of(r, "deno")?.rows.validRs?.value, of(r, "haproxy")?.rows.validRs?.value),
  ],
  [
    "binary, SCOPE_RULES row ÷ plain (P)",
    "≥ 0.9×",
    "×",
    true,
    0.9,
    (r) => ratio(of(r, "binary")?.rows.scopeRules?.value, of(r, "binary")?.rows.scopeRulesPlain?.value),
  ],
  [
    "binary, cached opaque token ÷ plain (P)",
    "(own row)",
    "×",
    true,
    NaN,
    (r) => ratio(of(r, "binary")?.rows.opaque?.value, of(r, "binary")?.rows.opaquePlain?.value),
  ],
  [
    "binary, REDIS_ADDR ÷ plain (P)",
    "(own row)",
    "×",
    true,
    NaN,
    (r) => ratio(of(r, "binary")?.rows.redis?.value, of(r, "binary")?.rows.redisPlain?.value),
  ],
  ["binary, start to first 200", "≤ 50 ms", " ms", false, 50, (r) => of(r, "binary")?.startMs ?? NaN],
  ["HAProxy, CPU µs per valid request", "", " µs", false, NaN, (r) => of(r, "haproxy")?.rows.validRs?.cpuUs ?? NaN],
  ["binary, CPU µs per valid request", "", " µs", false, NaN, (r) => of(r, "binary")?.rows.validRs?.cpuUs ?? NaN],
  ["HAProxy, CPU µs per flood request", "", " µs", false, NaN, (r) => of(r, "haproxy")?.rows.flood?.cpuUs ?? NaN],
  ["binary, CPU µs per flood request", "", " µs", false, NaN, (r) => of(r, "binary")?.rows.flood?.cpuUs ?? NaN],
];

function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
const fmt = (v: number, unit: string) =>
  Number.isFinite(v) ? `${unit === "×" ? v.toFixed(2) : v < 10 ? v.toFixed(2) : v.toFixed(0)}${unit}` : "—";

const head = files.map((f) => f.match(/bench-([0-9T-]+)\.json$/)?.[1] ?? f);
console.log(`| figure | ${head.join(" | ")} | median | goal | |`);
console.log(`|:--|${runs.map(() => "--:|").join("")}--:|:--|:--|`);
for (const [name, goal, unit, higher, limit, get] of figures) {
  const values = runs.map(get);
  const m = median(values);
  const verdict = !Number.isFinite(limit) || !Number.isFinite(m)
    ? ""
    : (higher ? m >= limit : m <= limit)
    ? "met"
    : "missed";
  console.log(
    `| ${name} | ${values.map((v) => fmt(v, unit)).join(" | ")} | **${fmt(m, unit)}** | ${goal} | ${verdict} |`,
  );
}
