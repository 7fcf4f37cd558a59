/**
 * A .cpuprofile (Chrome DevTools format: `bun --cpu-prof`, `deno run --cpu-prof`) as a
 * Markdown table of the functions with the most self time, and the same grouped by file.
 *
 *   deno run -A bench/cpuprofile.ts <file.cpuprofile> [--top=20] [--last=SECONDS] [--root=DIR]
 *
 * `--last` keeps only the samples of the profile's last SECONDS (the measured load, without
 * start-up and warm-up); `--root` is cut from file paths. Percentages are of the busy
 * samples: everything but "(idle)".
 */

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfRow {
  name: string;
  location: string;
  selfMs: number;
  /** Share of the busy time, 0–100. */
  selfPct: number;
}

export interface ProfileSummary {
  /** Busy (non-idle) milliseconds in the window. */
  busyMs: number;
  idleMs: number;
  windowMs: number;
  samples: number;
  functions: SelfRow[];
  files: SelfRow[];
  /** The gateway's own functions (not node_modules, not the runtime's) by total time, callees included. */
  totals: SelfRow[];
}

/** A source location, short: repository-relative, node_modules packages by name, 1-based line. */
export function shortLocation(frame: CallFrame, root = ""): string {
  let url = frame.url;
  if (url === "") return "(native)";
  if (url.startsWith("file://")) url = decodeURIComponent(url.slice(7));
  const nm = url.lastIndexOf("/node_modules/");
  if (nm !== -1) url = url.slice(nm + "/node_modules/".length);
  else if (root !== "" && url.startsWith(root)) url = url.slice(root.length).replace(/^\/+/, "");
  return frame.lineNumber >= 0 ? `${url}:${frame.lineNumber + 1}` : url;
}

function fileOf(location: string): string {
  return location.replace(/:\d+$/, "");
}

/** Self time per function (and per file) over the samples of the window. */
export function summarize(profile: CpuProfile, opts: { lastMs?: number; root?: string; top?: number } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const { samples, timeDeltas } = profile;
  // Sample i lasts until sample i+1 (DevTools' attribution); the last one gets the median interval.
  const times: number[] = [];
  let t = profile.startTime;
  for (const d of timeDeltas) times.push(t += d);
  const sorted = timeDeltas.slice(1).toSorted((a, b) => a - b);
  const typical = sorted[Math.floor(sorted.length / 2)] ?? 1000;
  const end = times[times.length - 1] ?? profile.endTime;
  const from = opts.lastMs !== undefined ? end - opts.lastMs * 1000 : -Infinity;
  const self = new Map<string, { frame: CallFrame; us: number }>();
  let busy = 0, idle = 0, count = 0;
  for (let i = 0; i < samples.length; i++) {
    if (times[i]! < from) continue;
    const us = i + 1 < samples.length ? times[i + 1]! - times[i]! : typical;
    const frame = byId.get(samples[i]!);
    if (!frame) continue;
    count++;
    if (frame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    busy += us;
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}`;
    const entry = self.get(key);
    if (entry) entry.us += us;
    else self.set(key, { frame, us });
  }
  const root = opts.root ?? "";
  const rows: SelfRow[] = [...self.values()].map(({ frame, us }) => ({
    name: frame.functionName || "(anonymous)",
    location: shortLocation(frame, root),
    selfMs: us / 1000,
    selfPct: busy > 0 ? (us / busy) * 100 : 0,
  }));
  rows.sort((a, b) => b.selfMs - a.selfMs);
  const files = new Map<string, number>();
  for (const r of rows) {
    const f = r.location === "(native)" ? `${r.name.startsWith("(") ? r.name : "(native)"}` : fileOf(r.location);
    files.set(f, (files.get(f) ?? 0) + r.selfMs);
  }
  const top = opts.top ?? 20;
  const totals = inclusive(profile, times, from, busy, root);
  const summary: ProfileSummary = {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    windowMs: (busy + idle) / 1000,
    samples: count,
    functions: rows.slice(0, top),
    files: [...files].map(([location, ms]) => ({
      name: location,
      location,
      selfMs: ms,
      selfPct: busy > 0 ? (ms * 1000 / busy) * 100 : 0,
    })).sort((a, b) => b.selfMs - a.selfMs).slice(0, top),
    totals: totals.slice(0, top),
  };
  return summary;
}

/** Total (inclusive) time of the functions in the repository's own files: each sample counts once per function on its stack. */
function inclusive(profile: CpuProfile, times: number[], from: number, busy: number, root: string): SelfRow[] {
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const total = new Map<string, { frame: CallFrame; us: number }>();
  const own = (f: CallFrame) =>
    f.url !== "" && !f.url.includes("/node_modules/") && !f.url.startsWith("ext:") &&
    !f.url.startsWith("node:") && !f.url.startsWith("builtin:");
  for (let i = 0; i < profile.samples.length; i++) {
    if (times[i]! < from || i + 1 >= profile.samples.length) continue;
    const us = times[i + 1]! - times[i]!;
    const seen = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!;
      if (f.functionName === "(idle)") break;
      if (!own(f)) continue;
      const key = `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const e = total.get(key);
      if (e) e.us += us;
      else total.set(key, { frame: f, us });
    }
  }
  return [...total.values()].map(({ frame, us }) => ({
    name: frame.functionName || "(anonymous)",
    location: shortLocation(frame, root),
    selfMs: us / 1000,
    selfPct: busy > 0 ? (us / busy) * 100 : 0,
  })).sort((a, b) => b.selfMs - a.selfMs);
}

const cellText = (s: string) => s.replace(/\|/g, "\\|");

/** The two tables as Markdown. */
export function renderSummary(s: ProfileSummary): string {
  const lines = [
    `${s.samples} samples over ${(s.windowMs / 1000).toFixed(1)} s: busy ${(s.busyMs / 1000).toFixed(2)} s, idle ${
      (s.idleMs / 1000).toFixed(2)
    } s. Self % is of the busy time.`,
    "",
    "| # | function | file:line | self % | self ms |",
    "| --: | :-- | :-- | --: | --: |",
    ...s.functions.map((r, i) =>
      `| ${i + 1} | \`${cellText(r.name)}\` | ${cellText(r.location)} | ${r.selfPct.toFixed(1)} | ${
        r.selfMs.toFixed(0)
      } |`
    ),
    "",
    "By file (self time of all its functions):",
    "",
    "| file | self % | self ms |",
    "| :-- | --: | --: |",
    ...s.files.map((r) => `| ${cellText(r.location)} | ${r.selfPct.toFixed(1)} | ${r.selfMs.toFixed(0)} |`),
    "",
    "The gateway's own functions by total time (callees included):",
    "",
    "| function | file:line | total % | total ms |",
    "| :-- | :-- | --: | --: |",
    ...s.totals.map((r) =>
      `| \`${cellText(r.name)}\` | ${cellText(r.location)} | ${r.selfPct.toFixed(1)} | ${r.selfMs.toFixed(0)} |`
    ),
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const file = Deno.args.find((a) => !a.startsWith("--"));
  if (!file) {
    console.error("usage: deno run -A bench/cpuprofile.ts <file.cpuprofile> [--top=20] [--last=SECONDS] [--root=DIR]");
    Deno.exit(2);
  }
  const opt = (name: string) => Deno.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
  const last = opt("last");
  const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
  console.log(renderSummary(summarize(profile, {
    top: Number(opt("top") ?? 20),
    root: opt("root") ?? "",
    ...(last !== undefined ? { lastMs: Number(last) * 1000 } : {}),
  })));
}
