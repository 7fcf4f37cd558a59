// Fuzz: SCOPE_RULES through the whole gateway (createGateway, in-memory issuer, recording
// upstream), over random rule sets, scope hierarchies, tokens, bodies, batches and
// Mcp-Method / Mcp-Name headers. Two properties, checked against a reference model written
// independently here (regular expressions for patterns, a graph walk for SCOPE_IMPLIES):
//   - no body the gateway refuses is ever forwarded, and a forwarded body is byte for byte
//     the one sent;
//   - no request needing scope S is forwarded with a token lacking S after implication; a
//     403 names exactly the needed scopes (REQUIRED_SCOPES first, then the rules', once).
// The model also predicts every status (200, 400 with its JSON-RPC code and id, 403, 413).
import fc from "fast-check";
import { assert, assertEquals } from "@std/assert";
import { createGateway } from "../../src/app.ts";
import { createLogger } from "../../src/logging.ts";
import { claims, config, FakeNet, makeKey, sign, T0 } from "../unit/_fixtures.ts";
import { FUZZ_RUNS, FUZZ_SEED, params } from "./_harness.ts";

const key = await makeKey("RS256", "fuzz-rules");
const SCOPES = ["a", "b", "c", "d", "offline_access"] as const;
const METHODS = ["tools/call", "tools/list", "prompts/get", "resources/read", "resources/subscribe", "ping", "x/y"];
const NAMED: Record<string, "name" | "uri"> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "resources/subscribe": "uri",
  "resources/unsubscribe": "uri",
};
const NAMES = ["echo", "delete_all", "del", "file:///a/b", "file:///secret", "héllo", "a*b", ""];

// ---- generators ------------------------------------------------------------------------

/** A pattern built from pieces of the method and name vocabularies, with stars. */
const pattern = (words: readonly string[]) =>
  fc.oneof(
    fc.constantFrom(...words),
    fc.constant("*"),
    fc.tuple(fc.constantFrom(...words), fc.integer({ min: 0, max: 8 })).map(([w, i]) =>
      `${w.slice(0, i % (w.length + 1))}*`
    ),
    fc.tuple(fc.constantFrom(...words), fc.integer({ min: 0, max: 8 })).map(([w, i]) =>
      `*${w.slice(i % (w.length + 1))}`
    ),
    fc.tuple(fc.constantFrom(...words), fc.integer({ min: 0, max: 8 })).map(([w, i]) => {
      const at = i % (w.length + 1);
      return `${w.slice(0, at)}*${w.slice(at + 1)}`;
    }),
  );
const scopeSet = fc.subarray([...SCOPES]);
const rule = fc.record({
  method: pattern(METHODS),
  name: fc.option(pattern(NAMES), { nil: undefined }),
  scopes: scopeSet,
});
const implies = fc.dictionary(fc.constantFrom(...SCOPES), scopeSet, { maxKeys: 4 });

interface Msg {
  value: Record<string, unknown> | unknown;
  /** A watched key to give twice (method, params, name, uri), or none. */
  dup: string | undefined;
  escapeKeys: boolean;
}

const id = fc.oneof(
  fc.integer({ min: -5, max: 99 }),
  fc.constantFrom("x", "é", ""),
  fc.constant(null),
  fc.constant({}),
);
const nameValue = fc.oneof({ weight: 40, arbitrary: fc.constantFrom(...NAMES) }, {
  weight: 1,
  arbitrary: fc.constant(7),
});
const paramsValue = fc.oneof(
  { weight: 40, arbitrary: fc.record({ name: nameValue, uri: nameValue }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.constant([1]) },
  { weight: 1, arbitrary: fc.constant("p") },
);
const message: fc.Arbitrary<Msg> = fc.record({
  value: fc.oneof(
    // A request or notification: mostly valid, sometimes not.
    {
      weight: 30,
      arbitrary: fc.record({
        jsonrpc: fc.oneof({ weight: 40, arbitrary: fc.constant("2.0") }, { weight: 1, arbitrary: fc.constant("1.0") }),
        id,
        method: fc.oneof({ weight: 40, arbitrary: fc.constantFrom(...METHODS) }, {
          weight: 1,
          arbitrary: fc.constant(5),
        }),
        params: paramsValue,
      }, { requiredKeys: ["jsonrpc", "method"] }),
    },
    // A response.
    { weight: 4, arbitrary: fc.record({ jsonrpc: fc.constant("2.0"), id, result: fc.constant({}) }) },
    // Neither: no method, maybe no result.
    {
      weight: 1,
      arbitrary: fc.record({ jsonrpc: fc.constant("2.0"), id, result: fc.constant({}) }, { requiredKeys: [] }),
    },
    { weight: 1, arbitrary: fc.constantFrom(1, "s", null, [] as unknown[]) },
  ),
  dup: fc.oneof({ weight: 40, arbitrary: fc.constant(undefined) }, {
    weight: 1,
    arbitrary: fc.constantFrom("method", "params", "name", "uri"),
  }),
  escapeKeys: fc.boolean(),
});

/** JSON text of a message, keys possibly \u-escaped, a watched key possibly given twice (the first copy differs). */
function serialize(m: Msg): { text: string; duplicated: boolean } {
  const v = m.value;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { text: JSON.stringify(v), duplicated: false };
  const k = (
    s: string,
  ) => (m.escapeKeys
    ? `"${[...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("")}"`
    : JSON.stringify(s));
  let duplicated = false;
  const obj = (o: Record<string, unknown>, inParams: boolean): string => {
    const parts: string[] = [];
    for (const [key, value] of Object.entries(o)) {
      const watched = inParams ? key === "name" || key === "uri" : key === "method" || key === "params";
      if (watched && m.dup === key) {
        parts.push(`${k(key)}:${JSON.stringify(key === "params" ? { name: "delete_all" } : "delete_all")}`);
        duplicated = true;
      }
      const text = key === "params" && !inParams && typeof value === "object" && value !== null && !Array.isArray(value)
        ? obj(value as Record<string, unknown>, true)
        : JSON.stringify(value);
      parts.push(`${k(key)} : ${text}`);
    }
    return `{ ${parts.join(",\n")} }`;
  };
  return { text: obj(v as Record<string, unknown>, false), duplicated };
}

type Header = { kind: "absent" } | { kind: "plain" | "b64"; value: string } | { kind: "bad" };
/** "same": the first message's own value (method or name), plain or base64, when it has one. */
type HeaderChoice = Header | { kind: "same"; b64: boolean };
const header = (values: readonly string[]): fc.Arbitrary<HeaderChoice> =>
  fc.oneof(
    { weight: 16, arbitrary: fc.constant({ kind: "absent" as const }) },
    { weight: 10, arbitrary: fc.boolean().map((b64) => ({ kind: "same" as const, b64 })) },
    { weight: 1, arbitrary: fc.constantFrom(...values).map((value) => ({ kind: "plain" as const, value })) },
    { weight: 1, arbitrary: fc.constantFrom(...values).map((value) => ({ kind: "b64" as const, value })) },
    { weight: 1, arbitrary: fc.constant({ kind: "bad" as const }) },
  );

/** A header choice made concrete against the first message of the body. */
function resolve(choice: HeaderChoice, first: unknown, which: "method" | "name"): Header {
  if (choice.kind !== "same") return choice;
  if (typeof first !== "object" || first === null) return { kind: "absent" };
  const o = first as Record<string, unknown>;
  const p = o.params as Record<string, unknown> | undefined;
  const key = typeof o.method === "string" ? NAMED[o.method] : undefined;
  const v = which === "method" ? o.method : key && p && typeof p === "object" ? p[key] : undefined;
  if (typeof v !== "string" || (!choice.b64 && !/^[\x21-\x7e]+$/.test(v))) return { kind: "absent" };
  return { kind: choice.b64 ? "b64" : "plain", value: v };
}
const ASCII_NAMES = NAMES.filter((n) => /^[\x21-\x7e]+$/.test(n));

const body = fc.oneof(
  { weight: 8, arbitrary: message.map((m) => ({ batch: false as const, messages: [m] })) },
  { weight: 4, arbitrary: fc.array(message, { maxLength: 4 }).map((messages) => ({ batch: true as const, messages })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((garbage) => ({ garbage })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((bytes) => ({ bytes })) },
);

// ---- the reference model -----------------------------------------------------------------

const globToRegex = (p: string) =>
  new RegExp(`^${p.split("*").map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`, "s");

function held(token: readonly string[], scope: string, graph: Record<string, readonly string[]>): boolean {
  const seen = new Set<string>();
  const queue = token.filter((s) => s !== "offline_access" || !Object.hasOwn(graph, s));
  while (queue.length > 0) {
    const s = queue.shift()!;
    if (s === scope) return true;
    if (seen.has(s)) continue;
    seen.add(s);
    queue.push(...(graph[s] ?? []));
  }
  return false;
}

type Expected =
  | { status: 200; needed: string[] }
  | { status: 400; code: number; id: unknown }
  | { status: 403; needed: string[] }
  | { status: 413 };

function readableId(v: unknown): unknown {
  const id = (v as Record<string, unknown>).id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

function model(
  bytes: Uint8Array,
  dupAt: number,
  headers: { method: Header; name: Header },
  cfg: { rules: { method: string; name?: string | undefined; scopes: string[] }[]; required: string[]; max: number },
): Expected {
  if (bytes.length > cfg.max) return { status: 413 };
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    return { status: 400, code: -32700, id: null };
  }
  const batch = Array.isArray(parsed);
  const items = batch ? parsed as unknown[] : [parsed];
  if (items.length === 0) return { status: 400, code: -32600, id: null };
  const msgs: { method: string | undefined; name: string | undefined; id: unknown }[] = [];
  for (let i = 0; i < items.length; i++) {
    const m = items[i];
    if (typeof m !== "object" || m === null || Array.isArray(m)) return { status: 400, code: -32600, id: null };
    const o = m as Record<string, unknown>;
    const bad = o.jsonrpc !== "2.0" ||
      ("method" in o && typeof o.method !== "string") ||
      (!("method" in o) && !("result" in o) && !("error" in o)) ||
      ("params" in o && (typeof o.params !== "object" || o.params === null)) ||
      (typeof o.method === "string" && NAMED[o.method] !== undefined && typeof o.params === "object" &&
        o.params !== null && !Array.isArray(o.params) && NAMED[o.method]! in o.params &&
        typeof (o.params as Record<string, unknown>)[NAMED[o.method]!] !== "string") ||
      dupAt === i;
    if (bad) return { status: 400, code: -32600, id: readableId(o) };
    const key = typeof o.method === "string" ? NAMED[o.method] : undefined;
    const p = o.params as Record<string, unknown> | undefined;
    const name = key && p && !Array.isArray(p) && typeof p[key] === "string" ? p[key] as string : undefined;
    msgs.push({ method: o.method as string | undefined, name, id: readableId(o) });
  }
  // A header disagrees unless it decodes to exactly the message's value; a malformed one always does.
  const disagrees = (h: Header, v: string | undefined) =>
    h.kind === "bad" || ((h.kind === "plain" || h.kind === "b64") && h.value !== v);
  for (const m of msgs) {
    if (disagrees(headers.method, m.method) || disagrees(headers.name, m.name)) {
      return { status: 400, code: -32020, id: m.id };
    }
  }
  const needed = [...new Set(cfg.required)];
  for (const m of msgs) {
    if (m.method === undefined) continue;
    const r = cfg.rules.find((r) =>
      globToRegex(r.method).test(m.method!) &&
      (r.name === undefined || (m.name !== undefined && globToRegex(r.name).test(m.name)))
    );
    for (const s of r?.scopes ?? []) if (!needed.includes(s)) needed.push(s);
  }
  return { status: 200, needed };
}

function headerText(h: Header): string | undefined {
  if (h.kind === "plain") return h.value;
  if (h.kind === "b64") return `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode(h.value)))}?=`;
  if (h.kind === "bad") return "=?base64?***?=";
  return undefined;
}

// ---- the property --------------------------------------------------------------------------

Deno.test(`fuzz: SCOPE_RULES never forwards a refused body nor a call the token may not make (seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs)`, async () => {
  const tokens = new Map<string, string>();
  const tokenFor = async (scopes: readonly string[]) => {
    const k = scopes.join(" ");
    if (!tokens.has(k)) tokens.set(k, await sign(key, claims(T0, { scope: k })));
    return tokens.get(k)!;
  };
  let forwarded = 0, refused = 0, denied = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(rule, { maxLength: 6 }),
      implies,
      scopeSet,
      scopeSet,
      body,
      header(METHODS),
      header(ASCII_NAMES),
      fc.oneof({ weight: 1, arbitrary: fc.constant(80) }, { weight: 9, arbitrary: fc.constant(10_485_760) }),
      async (rules, graph, required, tokenScopes, b, methodChoice, nameChoice, max) => {
        const net = new FakeNet([key.publicJwk]);
        const cfg = config({
          REQUIRED_SCOPES: required.join(","),
          SCOPE_RULES: JSON.stringify(rules),
          SCOPE_IMPLIES: JSON.stringify(graph),
          RATE_LIMIT_RPS: "0",
          MAX_REQUEST_BODY: String(max),
        });
        const gw = createGateway(cfg, {
          fetch: net.fetch,
          now: () => T0,
          log: createLogger("error", () => {}, () => T0),
        });
        await gw.start();
        let bytes: Uint8Array<ArrayBuffer>;
        let dupAt = -1;
        if ("garbage" in b) bytes = new TextEncoder().encode(b.garbage);
        else if ("bytes" in b) bytes = new Uint8Array(b.bytes);
        else {
          const texts = b.messages.map(serialize);
          dupAt = texts.findIndex((t) => t.duplicated);
          bytes = new TextEncoder().encode(b.batch ? `[${texts.map((t) => t.text).join(" , ")}]` : texts[0]!.text);
        }
        const headers = new Headers({
          authorization: `Bearer ${await tokenFor(tokenScopes)}`,
          "content-type": "application/json",
        });
        const first = "messages" in b ? b.messages[0]?.value : undefined;
        const hMethod = resolve(methodChoice, first, "method"), hName = resolve(nameChoice, first, "name");
        const hm = headerText(hMethod), hn = headerText(hName);
        if (hm !== undefined) headers.set("mcp-method", hm);
        if (hn !== undefined) headers.set("mcp-name", hn);
        const res = await gw.fetch(
          new Request("https://mcp.example.com/mcp", { method: "POST", body: bytes, headers }),
          {
            remoteAddr: "127.0.0.1",
          },
        );
        const text = await res.text();
        gw.close();
        const noOffline = (l: readonly string[]) => l.filter((s) => s !== "offline_access");
        const expected = model(bytes, dupAt, { method: hMethod, name: hName }, {
          rules: rules.map((r) => ({ ...r, scopes: noOffline(r.scopes) })),
          required: noOffline(required),
          max,
        });
        const graphNoOffline = Object.fromEntries(
          Object.entries(graph).filter(([k]) => k !== "offline_access").map(([k, v]) => [k, noOffline(v)]),
        );
        const up = net.upstreamRequests;

        if (res.status === 200) {
          // Forwarded: exactly these bytes, and the token holds every scope needed.
          assertEquals(up.length, 1);
          assertEquals(new TextEncoder().encode(up[0]!.body), bytes);
          assertEquals(expected.status, 200, `forwarded, but the model says ${JSON.stringify(expected)}`);
          for (const s of (expected as { needed: string[] }).needed) {
            assert(held(tokenScopes, s, graphNoOffline), `forwarded without ${s}`);
          }
          forwarded++;
          return;
        }
        assertEquals(up.length, 0, `status ${res.status}: nothing may reach the upstream`);
        if (expected.status === 200) {
          // Not forwarded: must be a 403 naming exactly what the request needs, and a scope is missing.
          assertEquals(res.status, 403, text);
          assert(expected.needed.some((s) => !held(tokenScopes, s, graphNoOffline)), "403 though every scope is held");
          const scope = /scope="([^"]*)"/.exec(res.headers.get("www-authenticate") ?? "")?.[1];
          assertEquals(scope, expected.needed.join(" "));
          denied++;
          return;
        }
        assertEquals(res.status, expected.status, `${text} vs ${JSON.stringify(expected)}`);
        if (expected.status === 400) {
          const err = JSON.parse(text);
          assertEquals([err.jsonrpc, err.error.code, err.id], ["2.0", expected.code, expected.id]);
        }
        refused++;
      },
    ),
    params(),
  );
  console.log(`forwarded ${forwarded}, refused ${refused}, denied ${denied}`);
  // The generators reach every outcome.
  assert(forwarded > 0 && refused > 0 && denied > 0, `forwarded ${forwarded}, refused ${refused}, denied ${denied}`);
});
