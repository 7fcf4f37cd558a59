// KeySet's background work with an injected clock and a manual timer: the scheduled
// refresh (interval, jitter, backoff after failures, last good keys kept), key stamps
// dying with their keys, the trailing refetch after a signature failure inside the
// cooldown, and close() stopping everything.
import { assert, assertEquals, assertLessOrEqual } from "@std/assert";
import { createLogger } from "../../src/logging.ts";
import { KeySet, type KeySetOptions, type Schedule } from "../../src/auth/key_set.ts";
import { FakeNet, ISSUER, JWKS_URL, makeKey, T0 } from "./_fixtures.ts";

const rs = await makeKey("RS256", "rs1");
const es = await makeKey("ES256", "es1");
const rsRotated = await makeKey("RS256", "rs1");

const Interval = 10_000;
const Cooldown = 3_000;

interface Task {
  at: number;
  ms: number;
  fn: () => void;
  state: "pending" | "ran" | "cancelled";
}

/** setTimeout on the injected clock: advance() runs what falls due, in order. */
class ManualTimers {
  tasks: Task[] = [];
  constructor(private clock: { now: number }) {}

  readonly schedule: Schedule = (fn, ms) => {
    const task: Task = { at: this.clock.now + ms, ms, fn, state: "pending" };
    this.tasks.push(task);
    return () => {
      if (task.state === "pending") task.state = "cancelled";
    };
  };

  get pending(): Task[] {
    return this.tasks.filter((t) => t.state === "pending");
  }

  /** Delays of the tasks booked so far that are still pending. */
  get pendingDelays(): number[] {
    return this.pending.map((t) => t.ms);
  }

  async advance(ms: number): Promise<void> {
    const end = this.clock.now + ms;
    for (;;) {
      const next = this.pending.sort((a, b) => a.at - b.at)[0];
      if (!next || next.at > end) break;
      this.clock.now = next.at;
      next.state = "ran";
      next.fn();
      await settle();
    }
    this.clock.now = end;
  }
}

/** Lets a fake fetch and its follow-ups finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
}

function setup(over: Partial<KeySetOptions> = {}) {
  const clock = { now: T0 };
  const now = () => clock.now;
  const net = new FakeNet([rs.publicJwk, es.publicJwk]);
  const timers = new ManualTimers(clock);
  const lines: Record<string, unknown>[] = [];
  const fetches: ("ok" | "error")[] = [];
  const keySet = new KeySet({
    issuer: ISSUER,
    jwksUri: JWKS_URL,
    fetch: net.fetch,
    now,
    log: createLogger("debug", (l) => lines.push(JSON.parse(l)), now),
    refreshIntervalMs: Interval,
    cooldownMs: Cooldown,
    timeoutMs: 1_000,
    onFetch: (outcome) => fetches.push(outcome),
    schedule: timers.schedule,
    random: () => 0.5,
    ...over,
  });
  const jwksFetches = () => net.callsTo(JWKS_URL);
  return { clock, net, timers, lines, fetches, keySet, jwksFetches };
}

Deno.test("KeySet.start() refreshes every interval whatever the traffic, with ±10 % jitter", async (t) => {
  await t.step("one fetch per interval, nothing else", async () => {
    const s = setup();
    await s.keySet.start();
    assertEquals([s.jwksFetches(), s.timers.pendingDelays], [1, [Interval]]);
    await s.timers.advance(Interval - 1);
    assertEquals(s.jwksFetches(), 1);
    await s.timers.advance(1);
    assertEquals(s.jwksFetches(), 2);
    await s.timers.advance(3 * Interval);
    assertEquals([s.jwksFetches(), s.fetches], [5, ["ok", "ok", "ok", "ok", "ok"]]);
    assertEquals(s.timers.pending.length, 1, "exactly one refresh booked at a time");
    s.keySet.close();
  });
  for (const [random, delay] of [[0, 9_000], [0.999_999, 11_000]] as const) {
    await t.step(`random ${random}: next refresh in ${delay} ms`, async () => {
      const s = setup({ random: () => random });
      await s.keySet.start();
      assertEquals(s.timers.pendingDelays, [delay]);
      s.keySet.close();
    });
  }
});

Deno.test("KeySet keeps the last good keys through failed refreshes, counting each and backing off", async () => {
  const s = setup({ refreshIntervalMs: 20_000 });
  await s.keySet.start();
  s.net.asFault = "500";
  await s.timers.advance(20_000);
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    const [next] = s.timers.pendingDelays;
    delays.push(next!);
    await s.timers.advance(next!);
  }
  assertEquals(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 20_000], "1 s doubling, capped at the interval");
  assertEquals(s.fetches, ["ok", ...Array(7).fill("error")]);
  assertEquals([s.keySet.ready, s.keySet.keyCount, s.keySet.hasKid("rs1")], [true, 2, true]);
  const warnings = s.lines.filter((l) => l.msg === "jwks refresh failed; keeping the last good keys");
  assertEquals(warnings.length, 7, "every failed attempt is logged");
  assertEquals(
    warnings.map((w) => [w.level, w.trigger, w.retry_in_ms, w.consecutive_failures]).slice(0, 3),
    [["warn", "refresh", 1_000, 1], ["warn", "refresh", 2_000, 2], ["warn", "refresh", 4_000, 3]],
  );
  s.net.asFault = "none";
  await s.timers.advance(s.timers.pendingDelays[0]!);
  assertEquals(s.fetches.at(-1), "ok");
  assertEquals(s.timers.pendingDelays, [20_000], "back to the interval after a success");
  s.keySet.close();
});

Deno.test("KeySet caps the retry backoff at 5 minutes under a long interval", async () => {
  const s = setup({ refreshIntervalMs: 3_600_000 });
  await s.keySet.start();
  s.net.asFault = "throw";
  await s.timers.advance(3_600_000);
  const delays: number[] = [];
  for (let i = 0; i < 11; i++) {
    const [next] = s.timers.pendingDelays;
    delays.push(next!);
    await s.timers.advance(next!);
  }
  assertEquals(delays.slice(-4), [128_000, 256_000, 300_000, 300_000]);
  s.keySet.close();
});

Deno.test("KeySet stamps die with their keys: removed or replaced kids, and the whole set on any change", async () => {
  const s = setup();
  await s.keySet.start();
  const [rsStamp, esStamp, setStamp] = [
    s.keySet.stampFor("rs1"),
    s.keySet.stampFor("es1"),
    s.keySet.stampFor(undefined),
  ];
  assertEquals(s.keySet.stampFor("not-there"), setStamp, "an unknown kid falls back to the set's stamp");

  s.net.jwks = { keys: [es.publicJwk, rs.publicJwk] }; // same keys, new order
  await s.timers.advance(Interval);
  assertEquals([rsStamp.live, esStamp.live], [true, true], "a reordered document kills no kid's stamp");

  s.net.jwks = { keys: [es.publicJwk] }; // rs1 removed
  await s.timers.advance(Interval);
  assertEquals([rsStamp.live, esStamp.live, setStamp.live], [false, true, false]);
  assertEquals(s.keySet.hasKid("rs1"), false);
  const removal = s.lines.findLast((l) => l.msg === "jwks loaded")!;
  assertEquals([removal.trigger, removal.removed, removal.replaced, removal.added], ["refresh", ["rs1"], [], []]);

  const esNow = s.keySet.stampFor("es1");
  s.net.jwks = { keys: [es.publicJwk, rsRotated.publicJwk] };
  await s.timers.advance(Interval);
  assertEquals(esNow.live, true);
  const added = s.lines.findLast((l) => l.msg === "jwks loaded")!;
  assertEquals([added.removed, added.added], [[], ["rs1"]]);
  const rsNew = s.keySet.stampFor("rs1");
  s.net.jwks = { keys: [es.publicJwk, rs.publicJwk] }; // new key material under rs1
  await s.timers.advance(Interval);
  assertEquals([rsNew.live, esNow.live], [false, true]);
  assertEquals(s.lines.findLast((l) => l.msg === "jwks loaded")!.replaced, ["rs1"]);
  s.keySet.close();
});

Deno.test("KeySet.refetch() books one trailing fetch for a signature failure inside the cooldown", async (t) => {
  await t.step("at the end of the cooldown, once, however many failures", async () => {
    const s = setup();
    await s.keySet.start();
    s.clock.now += 1_000;
    assertEquals(s.keySet.nextRefetchIn(), Cooldown - 1_000);
    const results = await Promise.all(Array.from({ length: 50 }, () => s.keySet.refetch("bad_signature")));
    assertEquals(results.every((r) => r === false), true);
    assertEquals(s.timers.pendingDelays.sort((a, b) => a - b), [Cooldown - 1_000, Interval]);
    s.net.jwks = { keys: [rsRotated.publicJwk, es.publicJwk] };
    await s.timers.advance(Cooldown - 1_000 - 1);
    assertEquals(s.jwksFetches(), 1);
    await s.timers.advance(1);
    assertEquals(s.jwksFetches(), 2, "the trailing fetch, with no request waiting");
    assertEquals(s.lines.findLast((l) => l.msg === "jwks loaded")!.trigger, "trailing refetch");
    assertEquals(s.lines.findLast((l) => l.msg === "jwks loaded")!.replaced, ["rs1"]);
    assertEquals(s.keySet.nextRefetchIn(), Cooldown);
    s.keySet.close();
  });
  await t.step("an unknown kid inside the cooldown books none", async () => {
    const s = setup();
    await s.keySet.start();
    assertEquals(await s.keySet.refetch("unknown_kid"), false);
    assertEquals(s.timers.pendingDelays, [Interval]);
    s.keySet.close();
  });
  await t.step("outside the cooldown the refetch is immediate and books nothing", async () => {
    const s = setup();
    await s.keySet.start();
    s.clock.now += Cooldown;
    s.net.jwks = { keys: [rsRotated.publicJwk, es.publicJwk] };
    assertEquals(await s.keySet.refetch("bad_signature"), true);
    assertEquals([s.jwksFetches(), s.timers.pendingDelays], [2, [Interval]]);
    s.keySet.close();
  });
  await t.step("a fetch before the trailing one makes it unnecessary", async () => {
    const s = setup({ refreshIntervalMs: 2_000 });
    await s.keySet.start();
    await s.keySet.refetch("bad_signature"); // trailing booked for 3 s; the refresh comes at 2 s
    await s.timers.advance(3_000);
    assertEquals(s.jwksFetches(), 2, "the refresh at 2 s, no trailing fetch at 3 s");
    s.keySet.close();
  });
  await t.step("a key set that was only load()ed books nothing", async () => {
    const s = setup();
    await s.keySet.load();
    assertEquals(await s.keySet.refetch("bad_signature"), false);
    assertEquals(s.timers.tasks.length, 0);
  });
});

Deno.test("KeySet.close() cancels every timer, wakes a retrying start() and aborts a fetch in flight", async (t) => {
  await t.step("after a successful start: the refresh and a trailing fetch are cancelled", async () => {
    const s = setup();
    await s.keySet.start();
    await s.keySet.refetch("bad_signature");
    assertEquals(s.timers.pending.length, 2);
    s.keySet.close();
    assertEquals(s.timers.pending.length, 0);
    await s.timers.advance(10 * Interval);
    assertEquals(s.jwksFetches(), 1);
  });
  await t.step("start() retrying against a failing server returns once closed", async () => {
    const s = setup();
    s.net.asFault = "500";
    let done = false;
    const started = s.keySet.start().then(() => (done = true));
    await settle();
    assertEquals([done, s.timers.pendingDelays], [false, [500]]);
    s.keySet.close();
    await started;
    assertEquals([done, s.keySet.ready, s.timers.pending.length], [true, false, 0]);
  });
  await t.step("with real timers: nothing is left running (the test sanitizers check)", async () => {
    const net = new FakeNet([rs.publicJwk]);
    net.asFault = "throw";
    const keySet = new KeySet({
      issuer: ISSUER,
      jwksUri: JWKS_URL,
      fetch: net.fetch,
      now: Date.now,
      log: createLogger("error", () => {}),
      refreshIntervalMs: 1_000,
      cooldownMs: 1_000,
      timeoutMs: 1_000,
    });
    const started = keySet.start();
    await new Promise((r) => setTimeout(r, 50));
    const closedAt = performance.now();
    keySet.close();
    await started;
    assertLessOrEqual(performance.now() - closedAt, 100);
  });
  await t.step("a fetch in flight is aborted and not counted as an authorization server failure", async () => {
    const s = setup();
    await s.keySet.start();
    let aborted = false;
    const hanging: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => {
          aborted = true;
          reject(init.signal!.reason);
        });
      });
    const ks = new KeySet({
      issuer: ISSUER,
      jwksUri: JWKS_URL,
      fetch: hanging,
      now: () => s.clock.now,
      log: createLogger("debug", (l) => s.lines.push(JSON.parse(l))),
      refreshIntervalMs: Interval,
      cooldownMs: Cooldown,
      timeoutMs: 60_000,
      onFetch: (outcome) => s.fetches.push(outcome),
      schedule: s.timers.schedule,
    });
    const before = [s.fetches.length, s.lines.length];
    const loading = ks.start();
    await settle();
    ks.close();
    await loading;
    assert(aborted, "the fetch saw the abort");
    assertEquals([s.fetches.length, s.lines.length], before, "no error counted, nothing logged");
    s.keySet.close();
  });
});

Deno.test("KeySet.nextRefetchIn() counts down from the last fetch of any kind", async () => {
  const s = setup();
  assertEquals(s.keySet.nextRefetchIn(), 0, "never fetched");
  await s.keySet.start();
  assertEquals(s.keySet.nextRefetchIn(), Cooldown);
  s.clock.now += 1_000;
  assertEquals(s.keySet.nextRefetchIn(), Cooldown - 1_000);
  await s.timers.advance(Interval - 1_000); // the background refresh starts a new cooldown
  assertEquals(s.keySet.nextRefetchIn(), Cooldown);
  s.clock.now += Cooldown + 5;
  assertEquals(s.keySet.nextRefetchIn(), 0, "never negative");
  s.keySet.close();
});
