// readRateLimits(): REDIS_* / REDIS_URL / REDIS_TIMEOUT / RATE_LIMIT_FAIL_CLOSED /
// USER_RATE_LIMIT_*, every bad value named, the password never in a reported value.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { EnvReader } from "../../src/env_reader.ts";
import { maskUrlPassword, parseHostPort, readRateLimits } from "../../src/limits/config.ts";
import { loadConfig, Variables } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";

function read(env: Record<string, string>) {
  const r = new EnvReader(env);
  const settings = readRateLimits(r);
  return { settings, problems: r.problems, warnings: r.warnings };
}

Deno.test("readRateLimits() defaults: in memory, 50 ms, fail open, no per-user limit", () => {
  const { settings, problems, warnings } = read({});
  assertEquals(settings, { redis: undefined, redisTimeoutMs: 50, failClosed: false, userRps: 0, userBurst: 0 });
  assertEquals(problems, []);
  assertEquals(warnings, []);
});

Deno.test("readRateLimits() reads REDIS_ADDR and its parts", async (t) => {
  const cases = [
    {
      description: "address only",
      env: { REDIS_ADDR: "redis:6379" },
      expected: { host: "redis", port: 6379, username: undefined, password: undefined, db: 0, tls: false },
      display: "redis://redis:6379/0",
    },
    {
      description: "user, password, database",
      env: { REDIS_ADDR: "10.0.0.5:6380", REDIS_USERNAME: "gate", REDIS_PASSWORD: "p@ss word", REDIS_DB: "3" },
      expected: { host: "10.0.0.5", port: 6380, username: "gate", password: "p@ss word", db: 3, tls: false },
      display: "redis://gate:***@10.0.0.5:6380/3",
    },
    {
      description: "IPv6 and a password alone",
      env: { REDIS_ADDR: "[fd00::5]:6379", REDIS_PASSWORD: "x" },
      expected: { host: "fd00::5", port: 6379, username: undefined, password: "x", db: 0, tls: false },
      display: "redis://:***@[fd00::5]:6379/0",
    },
  ];
  for (const { description, env, expected, display } of cases) {
    await t.step(description, () => {
      const { settings, problems } = read(env);
      assertEquals(problems, []);
      assertEquals(settings.redis, { ...expected, display });
    });
  }
});

Deno.test("readRateLimits() reads REDIS_URL, which wins over REDIS_ADDR with a warning", async (t) => {
  const cases = [
    {
      description: "redis:// with a password and a database",
      url: "redis://:s%40cret@cache.internal:6390/2",
      expected: { host: "cache.internal", port: 6390, username: undefined, password: "s@cret", db: 2, tls: false },
      display: "redis://:***@cache.internal:6390/2",
    },
    {
      description: "rediss:// with a user, default port and database",
      url: "rediss://gate:pw@redis.example.com",
      expected: { host: "redis.example.com", port: 6379, username: "gate", password: "pw", db: 0, tls: true },
      display: "rediss://gate:***@redis.example.com:6379/0",
    },
    {
      description: "IPv6, trailing slash",
      url: "redis://[::1]:7000/",
      expected: { host: "::1", port: 7000, username: undefined, password: undefined, db: 0, tls: false },
      display: "redis://[::1]:7000/0",
    },
  ];
  for (const { description, url, expected, display } of cases) {
    await t.step(description, () => {
      const { settings, problems, warnings } = read({ REDIS_URL: url });
      assertEquals(problems, []);
      assertEquals(warnings, []);
      assertEquals(settings.redis, { ...expected, display });
    });
  }
  await t.step("both set: REDIS_URL is used, and a warning names what is ignored", () => {
    const { settings, warnings } = read({ REDIS_URL: "redis://a:6379", REDIS_ADDR: "b:6379", REDIS_PASSWORD: "x" });
    assertEquals(settings.redis?.host, "a");
    assertEquals(warnings, [
      "REDIS_URL and REDIS_ADDR, REDIS_PASSWORD are all set: REDIS_URL is used and REDIS_ADDR, REDIS_PASSWORD ignored",
    ]);
  });
});

Deno.test("readRateLimits() names each bad value; a password never appears in one", async (t) => {
  const cases = [
    { env: { REDIS_ADDR: "redis" }, variable: "REDIS_ADDR", value: "redis", expected: "expected host:port" },
    { env: { REDIS_ADDR: "redis:0" }, variable: "REDIS_ADDR", value: "redis:0", expected: "expected host:port" },
    {
      env: { REDIS_ADDR: "redis:99999" },
      variable: "REDIS_ADDR",
      value: "redis:99999",
      expected: "expected host:port",
    },
    { env: { REDIS_ADDR: "r:1", REDIS_DB: "-1" }, variable: "REDIS_DB", value: "-1", expected: "non-negative whole" },
    {
      env: { REDIS_PASSWORD: "hunter22" },
      variable: "REDIS_ADDR",
      value: undefined,
      expected: "it is required when REDIS_PASSWORD is set",
    },
    {
      env: { REDIS_URL: "http://:hunter22@r:6379" },
      variable: "REDIS_URL",
      value: "http://:***@r:6379",
      expected: "redis:// or rediss://",
    },
    {
      env: { REDIS_URL: "redis://u:hunter22@r:6379/x" },
      variable: "REDIS_URL",
      value: "redis://u:***@r:6379/x",
      expected: "database number",
    },
    {
      env: { REDIS_URL: "redis://:hunter22@r:6379?tls=1" },
      variable: "REDIS_URL",
      value: "redis://:***@r:6379?tls=1",
      expected: "no ?query",
    },
    { env: { REDIS_URL: "redis://:hunter22@:6379" }, variable: "REDIS_URL", value: "redis://:***@:6379", expected: "" },
    { env: { REDIS_TIMEOUT: "0" }, variable: "REDIS_TIMEOUT", value: "0", expected: "more than 0" },
    { env: { REDIS_TIMEOUT: "fast" }, variable: "REDIS_TIMEOUT", value: "fast", expected: "duration" },
    { env: { RATE_LIMIT_FAIL_CLOSED: "yes" }, variable: "RATE_LIMIT_FAIL_CLOSED", value: "yes", expected: "true" },
    { env: { USER_RATE_LIMIT_RPS: "-1" }, variable: "USER_RATE_LIMIT_RPS", value: "-1", expected: "number" },
    { env: { USER_RATE_LIMIT_BURST: "1.5" }, variable: "USER_RATE_LIMIT_BURST", value: "1.5", expected: "whole" },
  ];
  for (const { env, variable, value, expected } of cases) {
    await t.step(`${JSON.stringify(env)}`, () => {
      const { problems } = read(env);
      assertEquals(problems.length, 1, JSON.stringify(problems));
      assertEquals(problems[0]!.variable, variable);
      assertEquals(problems[0]!.value, value);
      assert(problems[0]!.expected.includes(expected), problems[0]!.expected);
      assert(!JSON.stringify(problems).includes("hunter22"));
    });
  }
});

Deno.test("readRateLimits() warnings: a padded password, fail-closed without Redis", () => {
  assertEquals(read({ REDIS_ADDR: "r:6379", REDIS_PASSWORD: "secret\n" }).warnings, [
    "REDIS_PASSWORD starts or ends with white space (a line break from a secret file?); it is sent as is",
  ]);
  assertEquals(read({ REDIS_ADDR: "r:6379", REDIS_PASSWORD: "secret\n" }).settings.redis?.password, "secret\n");
  assertEquals(read({ RATE_LIMIT_FAIL_CLOSED: "true" }).warnings, [
    "RATE_LIMIT_FAIL_CLOSED has no effect without REDIS_ADDR or REDIS_URL: the buckets are in memory",
  ]);
});

Deno.test("readRateLimits() USER_RATE_LIMIT_BURST defaults to max(1, ceil(2 × RPS))", () => {
  for (
    const [rps, burst] of [["0", 0], ["0.1", 1], ["0.5", 1], ["0.6", 2], ["1", 2], ["2.5", 5], ["10", 20]] as const
  ) {
    const { settings } = read({ USER_RATE_LIMIT_RPS: rps });
    assertEquals([settings.userRps, settings.userBurst], [Number(rps), burst], `rps ${rps}`);
  }
  assertEquals(read({ USER_RATE_LIMIT_RPS: "1", USER_RATE_LIMIT_BURST: "7" }).settings.userBurst, 7);
});

Deno.test("parseHostPort() and maskUrlPassword()", () => {
  assertEquals(parseHostPort("redis:6379"), { host: "redis", port: 6379 });
  assertEquals(parseHostPort("[::1]:1"), { host: "::1", port: 1 });
  for (const bad of ["", ":6379", "redis", "redis:", "a b:1", "u@h:1", "h:65536"]) {
    assertEquals(parseHostPort(bad), undefined, bad);
  }
  assertEquals(maskUrlPassword("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
  assertEquals(maskUrlPassword("redis://:p@ss@h:1"), "redis://:***@h:1");
  assertEquals(maskUrlPassword("redis://u@h:1"), "redis://u@h:1");
  assertEquals(maskUrlPassword("redis://h:1"), "redis://h:1");
});

Deno.test("loadConfig() carries the rate-limit settings; the variables are listed for --help", () => {
  const base = {
    UPSTREAM_URL: "http://127.0.0.1:8000",
    RESOURCE_URI: "https://mcp.example.com/mcp",
    AUTHORIZATION_SERVER: "https://auth.example.com",
  };
  const config = loadConfig({ ...base, REDIS_ADDR: "r:6379", USER_RATE_LIMIT_RPS: "2", RATE_LIMIT_FAIL_CLOSED: "1" });
  assertEquals(config.rateLimits.redis?.display, "redis://r:6379/0");
  assertEquals([config.rateLimits.userRps, config.rateLimits.userBurst, config.rateLimits.failClosed], [2, 4, true]);
  const e = assertThrows(() => loadConfig({ ...base, REDIS_URL: "redis://:topsecret@" }), ConfigError);
  assert(e.message.includes("REDIS_URL"), e.message);
  assert(!e.message.includes("topsecret"), e.message);
  const names = Variables.map((v) => v.name);
  for (
    const name of [
      "REDIS_ADDR",
      "REDIS_USERNAME",
      "REDIS_PASSWORD",
      "REDIS_DB",
      "REDIS_URL",
      "REDIS_TIMEOUT",
      "RATE_LIMIT_FAIL_CLOSED",
      "USER_RATE_LIMIT_RPS",
      "USER_RATE_LIMIT_BURST",
    ]
  ) assert(names.includes(name), name);
});
