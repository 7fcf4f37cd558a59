/**
 * Builds the distributable forms of mcp-gate:
 *
 *   compile  dist/mcp-gate, a single executable for this machine (bun build --compile)
 *   release  dist/mcp-gate-<os>-<arch>[-musl][.exe] for every supported platform, and
 *            dist/SHA256SUMS; Bun's per-platform runtimes come from the `@oven/bun-*` npm
 *            packages (integrity-checked against package-lock.json), so nothing is
 *            downloaded from bun.sh
 *   bundle   dist/mcp-gate.js, one self-contained ES module (hono and jose inlined) that
 *            `deno run --allow-net --allow-env <URL>` runs
 *
 * Usage: deno run --allow-read --allow-write --allow-run scripts/build.ts <command> [--outdir=DIR]
 *
 * Executables never read .env, bunfig.toml, tsconfig.json or package.json from their
 * working directory (configuration is the environment only), and carry Bun's
 * --max-http-header-size so that MAX_HEADER_BYTES, not Bun, decides on large headers.
 */
import { Version } from "../src/version.ts";

const Root = new URL("../", import.meta.url);
const RootPath = decodeURIComponent(Root.pathname);
const Entry = "mod.ts";

/**
 * The V8 flag every documented Deno command carries: V8 lets the young generation grow to
 * 3 × 16 MiB under steady traffic; capped at 3 × 4 MiB, Deno's RSS after the 60 s mixed
 * load falls from about 157 to 113 MiB at the same CPU (README, Reliability).
 */
export const DenoV8Flags = "--v8-flags=--max-semi-space-size=4";

/** Bun's own limit on request headers (default 16 KiB, answered with Bun's 431 before our code runs). */
export const BunMaxHeaderBytes = 262_144;

/** Flags for every executable. --bytecode: faster start-up; esm: top-level await in mod.ts. */
export const CompileFlags = [
  "--compile",
  "--minify",
  "--bytecode",
  "--format=esm",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  "--no-compile-autoload-tsconfig",
  "--no-compile-autoload-package-json",
  `--compile-exec-argv=--max-http-header-size=${BunMaxHeaderBytes}`,
];

/** Release targets: output suffix, `bun build --target`, npm package holding that platform's bun. */
export const Targets = [
  { name: "linux-x64", bun: "bun-linux-x64", npm: "@oven/bun-linux-x64", exe: "bin/bun" },
  { name: "linux-arm64", bun: "bun-linux-arm64", npm: "@oven/bun-linux-aarch64", exe: "bin/bun" },
  { name: "linux-x64-musl", bun: "bun-linux-x64-musl", npm: "@oven/bun-linux-x64-musl", exe: "bin/bun" },
  { name: "linux-arm64-musl", bun: "bun-linux-arm64-musl", npm: "@oven/bun-linux-aarch64-musl", exe: "bin/bun" },
  { name: "darwin-x64", bun: "bun-darwin-x64", npm: "@oven/bun-darwin-x64", exe: "bin/bun" },
  { name: "darwin-arm64", bun: "bun-darwin-arm64", npm: "@oven/bun-darwin-aarch64", exe: "bin/bun" },
  { name: "windows-x64", bun: "bun-windows-x64", npm: "@oven/bun-windows-x64", exe: "bin/bun.exe", suffix: ".exe" },
] as const;

export class BuildError extends Error {
  override name = "BuildError";
}

function fail(message: string): never {
  throw new BuildError(message);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command from the repository root; returns stdout, fails the build on a non-zero exit. */
async function run(cmd: string, args: string[], opts: { quiet?: boolean; cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? RootPath,
    stdout: "piped",
    stderr: opts.quiet ? "piped" : "inherit",
  }).output().catch((e) => fail(`cannot run ${cmd}: ${e.message}`));
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = opts.quiet ? new TextDecoder().decode(out.stderr) : "";
    fail(`${cmd} ${args.join(" ")} exited with ${out.code}\n${stdout}${stderr}`);
  }
  return stdout;
}

async function bunPath(): Promise<string> {
  const local = `${RootPath}node_modules/.bin/bun`;
  return await exists(local) ? local : "bun";
}

function parseArgs(args: string[]): { command: string; outdir: string } {
  let command = "";
  let outdir = `${RootPath}dist`;
  for (const a of args) {
    if (a.startsWith("--outdir=")) outdir = a.slice("--outdir=".length);
    else if (!command && !a.startsWith("-")) command = a;
    else fail(`unexpected argument ${JSON.stringify(a)}`);
  }
  if (!outdir.startsWith("/")) outdir = `${Deno.cwd()}/${outdir}`;
  return { command, outdir: outdir.replace(/\/+$/, "") };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sri512(path: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", await Deno.readFile(path)));
  let s = "";
  for (const b of digest) s += String.fromCharCode(b);
  return `sha512-${btoa(s)}`;
}

/** dist/mcp-gate for this machine; checks that it starts and reports our version. */
export async function compile(outdir: string, log = console.log): Promise<string> {
  const bun = await bunPath();
  await Deno.mkdir(outdir, { recursive: true });
  const out = `${outdir}/mcp-gate${Deno.build.os === "windows" ? ".exe" : ""}`;
  await run(bun, ["build", ...CompileFlags, `--outfile=${out}`, Entry], { quiet: true });
  const version = (await run(out, ["--version"], { quiet: true, cwd: outdir })).trim();
  if (!version.startsWith(`mcp-gate ${Version} `)) fail(`${out} --version printed ${JSON.stringify(version)}`);
  log(`${out}  ${mib((await Deno.stat(out)).size)}  (${version})`);
  return out;
}

/**
 * The bun executable of another platform, from its npm package at the installed Bun's
 * version, cached under node_modules/.cache. npm verifies the registry's integrity; we
 * also require the tarball to match package-lock.json, when the lockfile pins it.
 */
async function targetRuntime(target: typeof Targets[number], version: string): Promise<string> {
  const dir = `${RootPath}node_modules/.cache/mcp-gate/bun-${version}/${target.npm.replace("/", "+")}`;
  const exe = `${dir}/package/${target.exe}`;
  if (await exists(exe)) return exe;

  await Deno.mkdir(dir, { recursive: true });
  const spec = `${target.npm}@${version}`;
  const packed = JSON.parse(await run("npm", ["pack", "--json", "--pack-destination", dir, spec], { quiet: true }));
  const tgz = `${dir}/${packed[0].filename}`;
  const lock = JSON.parse(await Deno.readTextFile(`${RootPath}package-lock.json`).catch(() => "{}"));
  const pinned = lock.packages?.[`node_modules/${target.npm}`];
  if (pinned?.version === version && pinned.integrity) {
    const got = await sri512(tgz);
    if (got !== pinned.integrity) fail(`${spec}: tarball ${got} does not match package-lock.json ${pinned.integrity}`);
  }
  await run("tar", ["-xzf", tgz, "-C", dir], { quiet: true });
  await Deno.remove(tgz);
  const meta = JSON.parse(await Deno.readTextFile(`${dir}/package/package.json`));
  if (meta.version !== version) fail(`${spec} unpacked as version ${meta.version}`);
  if (!(await exists(exe))) fail(`${spec} has no ${target.exe}`);
  return exe;
}

/** One executable per platform, and SHA256SUMS over them. */
export async function release(outdir: string, log = console.log): Promise<string[]> {
  const bun = await bunPath();
  const version = (await run(bun, ["--version"], { quiet: true })).trim();
  await Deno.mkdir(outdir, { recursive: true });
  const files: string[] = [];
  for (const target of Targets) {
    const runtime = await targetRuntime(target, version);
    const name = `mcp-gate-${target.name}${"suffix" in target ? target.suffix : ""}`;
    await run(bun, [
      "build",
      ...CompileFlags,
      `--target=${target.bun}`,
      `--compile-executable-path=${runtime}`,
      `--outfile=${outdir}/${name}`,
      Entry,
    ], { quiet: true });
    files.push(name);
    log(`${outdir}/${name}  ${mib((await Deno.stat(`${outdir}/${name}`)).size)}`);
  }
  const sums = [];
  for (const name of files.toSorted()) sums.push(`${await sha256File(`${outdir}/${name}`)}  ${name}\n`);
  await Deno.writeTextFile(`${outdir}/SHA256SUMS`, sums.join(""));
  log(`${outdir}/SHA256SUMS  (${files.length} files; check with: cd ${outdir} && sha256sum -c SHA256SUMS)`);
  return files;
}

/** dist/mcp-gate.js: one ES module; its only imports may be node: built-ins (used under Bun only). */
export async function bundle(outdir: string, log = console.log): Promise<string> {
  await Deno.mkdir(outdir, { recursive: true });
  const out = `${outdir}/mcp-gate.js`;
  const tmp = `${out}.tmp`;
  await run(Deno.execPath(), ["bundle", "--quiet", "--platform=deno", "--format=esm", `--output=${tmp}`, Entry], {
    quiet: true,
  });
  const header = `// mcp-gate ${Version}: a stateless OAuth 2.1 gateway for MCP servers. One self-contained module.\n` +
    `// Run: deno run ${DenoV8Flags} --unstable-no-legacy-abort --allow-net --allow-env <URL of this file> [command]\n` +
    // The Redis client (ioredis, inlined, loaded only when REDIS_ADDR or REDIS_URL is set) is CommonJS and
    // require()s Node built-ins, which the bundle's require shim cannot do in an ES module: give it
    // Deno's. A remote module's URL is no base for createRequire; built-ins need none.
    `import { createRequire as __mcpgateCreateRequire } from "node:module";\n` +
    `const require = __mcpgateCreateRequire("file:///");\n`;
  await Deno.writeTextFile(out, header + await Deno.readTextFile(tmp));
  await Deno.remove(tmp);

  const info = JSON.parse(await run(Deno.execPath(), ["info", "--no-config", "--json", out], { quiet: true }));
  const outside = (info.modules as { specifier: string }[])
    .map((m) => m.specifier)
    .filter((s) => !s.startsWith("node:") && s !== new URL(`file://${out}`).href);
  if (outside.length > 0) fail(`${out} is not self-contained; it imports ${outside.join(", ")}`);
  log(`${out}  ${((await Deno.stat(out)).size / 1024).toFixed(0)} KiB (self-contained)`);
  return out;
}

if (import.meta.main) {
  try {
    const { command, outdir } = parseArgs(Deno.args);
    switch (command) {
      case "compile":
        await compile(outdir);
        break;
      case "release":
        await release(outdir);
        break;
      case "bundle":
        await bundle(outdir);
        break;
      default:
        fail(`usage: scripts/build.ts compile|release|bundle [--outdir=DIR] (got ${JSON.stringify(command)})`);
    }
  } catch (e) {
    if (!(e instanceof BuildError)) throw e;
    console.error(`build: ${e.message}`);
    Deno.exit(1);
  }
}
