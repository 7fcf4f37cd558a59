import { assertEquals } from "@std/assert";
import { createLogger, type Level, redact, silentLogger } from "../../src/logging.ts";

const Jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLWJ5dGVz";

function collect(level: Level) {
  const lines: string[] = [];
  const log = createLogger(level, (line) => lines.push(line), () => Date.UTC(2026, 0, 1, 12, 0, 0, 5));
  return { lines, log };
}

Deno.test("createLogger() writes only levels at or above its own", async (t) => {
  const cases: { description: string; input: Level; expected: Level[] }[] = [
    { description: "debug", input: "debug", expected: ["debug", "info", "warn", "error"] },
    { description: "info", input: "info", expected: ["info", "warn", "error"] },
    { description: "warn", input: "warn", expected: ["warn", "error"] },
    { description: "error", input: "error", expected: ["error"] },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const { lines, log } = collect(input);
      log.debug("d");
      log.info("i");
      log.warn("w");
      log.error("e");
      assertEquals(lines.map((l) => JSON.parse(l).level), expected);
      assertEquals(log.level, input);
      assertEquals(
        (["debug", "info", "warn", "error"] as const).filter((l) => log.enabled(l)),
        expected,
      );
    });
  }
});

Deno.test("createLogger() writes one JSON object per line: time, level, msg, then fields", () => {
  const { lines, log } = collect("debug");
  log.info("request", { method: "POST", path: "/mcp", status: 401, reason: "expired" });
  log.log("warn", "jwks refresh failed");
  assertEquals(lines, [
    '{"time":"2026-01-01T12:00:00.005Z","level":"info","msg":"request","method":"POST","path":"/mcp","status":401,"reason":"expired"}',
    '{"time":"2026-01-01T12:00:00.005Z","level":"warn","msg":"jwks refresh failed"}',
  ]);
  for (const l of lines) assertEquals(l.includes("\n"), false);
});

Deno.test("createLogger() redacts JWT-looking strings in messages and fields", () => {
  const { lines, log } = collect("debug");
  log.error(`bad token ${Jwt}`, { error: `verify failed for Bearer ${Jwt}`, nested: { list: [Jwt] } });
  assertEquals(lines.length, 1);
  assertEquals(lines[0]!.includes("eyJhbGci"), false);
  assertEquals(JSON.parse(lines[0]!), {
    time: "2026-01-01T12:00:00.005Z",
    level: "error",
    msg: "bad token [redacted-jwt]",
    error: "verify failed for Bearer [redacted-jwt]",
    nested: { list: ["[redacted-jwt]"] },
  });
});

Deno.test("redact() replaces JWT-shaped runs only", async (t) => {
  const cases: { description: string; input: string; expected: string }[] = [
    { description: "no JWT", input: "nothing to see", expected: "nothing to see" },
    { description: "a JWT", input: Jwt, expected: "[redacted-jwt]" },
    { description: "JWT in text", input: `a ${Jwt} b`, expected: "a [redacted-jwt] b" },
    { description: "two JWTs", input: `${Jwt},${Jwt}`, expected: "[redacted-jwt],[redacted-jwt]" },
    {
      description: "unsigned JWT (empty signature)",
      input: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
      expected: "[redacted-jwt]",
    },
    { description: "eyJ alone is not a JWT", input: "eyJ is a prefix", expected: "eyJ is a prefix" },
    { description: "one segment is not a JWT", input: "eyJhbGciOiJub25lIn0", expected: "eyJhbGciOiJub25lIn0" },
    { description: "dotted names are not JWTs", input: "api.example.com", expected: "api.example.com" },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(redact(input), expected));
  }
});

Deno.test("silentLogger writes nothing", () => {
  const orig = console.log;
  const seen: unknown[] = [];
  console.log = (...a: unknown[]) => seen.push(a);
  try {
    silentLogger.error("x");
    silentLogger.info("y");
  } finally {
    console.log = orig;
  }
  assertEquals(seen, []);
});
