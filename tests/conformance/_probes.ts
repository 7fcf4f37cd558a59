// Streamable HTTP exchanges the conformance suite (0.1.16) does not make itself, run
// against the same upstream directly and through the gateway; what each one observes is
// normalised (no session or event ids) so that the two runs can be compared with
// assertEquals. They cover header validation (Accept, Content-Type,
// MCP-Protocol-Version for 2025-06-18, 2025-11-25 and 2026-07-28), sessions (missing,
// unknown, deleted), the standalone GET stream, progress notifications, and
// resumability: a stream closed mid-call and resumed with Last-Event-ID.

export interface SseEvent {
  id?: string;
  retry?: number;
  event?: string;
  data: string;
}

/** Reads SSE events until the stream ends, `stop(events)` says so, or timeoutMs passes. */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  stop: (events: SseEvent[]) => boolean = () => false,
  timeoutMs = 5_000,
): Promise<{ events: SseEvent[]; ended: boolean }> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const events: SseEvent[] = [];
  let buf = "";
  let ended = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
  try {
    while (!stop(events)) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") break;
      if (next.done) {
        ended = true;
        break;
      }
      buf += next.value;
      let sep: number;
      while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep).replace(/^\r?\n\r?\n/, "");
        const ev: SseEvent = { data: "" };
        const data: string[] = [];
        let fields = 0;
        for (const line of block.split(/\r?\n/)) {
          if (line === "" || line.startsWith(":")) continue;
          fields++;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "data") data.push(value);
          else if (field === "id") ev.id = value;
          else if (field === "event") ev.event = value;
          else if (field === "retry") ev.retry = Number(value);
        }
        ev.data = data.join("\n");
        // A block of comments only (": keepalive") is not an event.
        if (fields > 0) events.push(ev);
      }
    }
  } finally {
    clearTimeout(timer);
    if (!ended) await reader.cancel().catch(() => {});
  }
  return { events, ended };
}

/** An SSE event as a stable word: priming(retry), progress:<n>, result:<id>, error:<code>, notify:<method>. */
function describeEvent(e: SseEvent): string {
  if (e.data.trim() === "" || e.data === "{}") return e.retry !== undefined ? `priming(retry=${e.retry})` : "priming";
  const msg = JSON.parse(e.data);
  if (msg.method === "notifications/progress") return `progress:${msg.params.progress}`;
  if (msg.method) return `notify:${msg.method}`;
  if (msg.error) return `error:${msg.error.code}`;
  return `result:${msg.id}`;
}

export interface Observation {
  probe: string;
  status: number;
  /** Media type without parameters. */
  type: string;
  /** JSON-RPC error code of a JSON body, if any. */
  rpcError?: number | null;
  /** Whether the response carried Mcp-Session-Id. */
  session?: boolean;
  /** SSE events, described. */
  events?: string[];
  /** Whether the SSE stream ended by itself. */
  ended?: boolean;
  /** MCP header names the upstream received for this exchange. */
  upstreamMcpHeaders?: string[];
}

export interface ProbeTarget {
  /** The MCP endpoint (direct upstream or gateway). */
  url: string;
  /** Sent as Authorization: Bearer on every probe (the upstream ignores it). */
  token: string;
  /** The MCP header names the upstream saw on its most recent request. */
  lastUpstreamMcpHeaders: () => string[];
}

const Both = "application/json, text/event-stream";
const HeaderTimeoutMs = 3_000;

/** Runs every probe in order against one target; returns what each observed. */
export async function runProbes(t: ProbeTarget): Promise<Observation[]> {
  const out: Observation[] = [];
  const base = (extra: Record<string, string> = {}) => ({
    "authorization": `Bearer ${t.token}`,
    "content-type": "application/json",
    "accept": Both,
    ...extra,
  });
  const rpc = (id: number | null, method: string, params: unknown = {}) =>
    JSON.stringify(id === null ? { jsonrpc: "2.0", method, params } : { jsonrpc: "2.0", id, method, params });

  /**
   * Sends, observes, and always consumes or cancels the body. Response headers must
   * arrive within 3 s; an SSE body is read until it ends, `sseStop` says so, or
   * `timeoutMs` passes.
   */
  const observe = async (
    probe: string,
    init: RequestInit,
    sseStop?: (e: SseEvent[]) => boolean,
    timeoutMs?: number,
  ) => {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("no response headers")), HeaderTimeoutMs);
    let res: Response;
    try {
      res = await fetch(t.url, { ...init, signal: abort.signal });
    } catch (e) {
      if (!abort.signal.aborted) throw e;
      const o: Observation = { probe, status: 0, type: `no response headers within ${HeaderTimeoutMs} ms` };
      out.push(o);
      return { res: new Response(null), events: [] as SseEvent[], o };
    } finally {
      clearTimeout(timer);
    }
    const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
    const o: Observation = { probe, status: res.status, type, session: res.headers.has("mcp-session-id") };
    if (type === "text/event-stream" && res.body) {
      const { events, ended } = await readSse(res.body, sseStop, timeoutMs);
      o.events = events.map(describeEvent);
      o.ended = ended;
      out.push(o);
      return { res, events, o };
    }
    const text = await res.text();
    if (type === "application/json" && text) o.rpcError = JSON.parse(text).error?.code ?? null;
    out.push(o);
    return { res, events: [] as SseEvent[], o };
  };

  // Sessions: initialize (a resumable SSE stream: priming event first), initialized.
  const init = await observe("initialize 2025-11-25", {
    method: "POST",
    headers: base(),
    body: rpc(1, "initialize", {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "mcp-gate-parity-probe", version: "1.0.0" },
    }),
  });
  const sid = init.res.headers.get("mcp-session-id") ?? "";
  const s = (v = "2025-11-25", extra: Record<string, string> = {}) =>
    base({ "mcp-session-id": sid, "mcp-protocol-version": v, ...extra });
  await observe("notifications/initialized", {
    method: "POST",
    headers: s(),
    body: rpc(null, "notifications/initialized"),
  });

  // Session validation.
  await observe("no session id", { method: "POST", headers: base(), body: rpc(2, "tools/list") });
  await observe("unknown session id", {
    method: "POST",
    headers: base({ "mcp-session-id": "00000000-0000-0000-0000-000000000000" }),
    body: rpc(3, "tools/list"),
  });

  // Header validation: protocol revisions, Accept, Content-Type.
  for (const v of ["2025-06-18", "2025-11-25", "2026-07-28", "1999-01-01"]) {
    const extra = v === "2026-07-28" ? { "mcp-method": "tools/list" } : {};
    const r = await observe(`MCP-Protocol-Version ${v}`, {
      method: "POST",
      headers: s(v, extra),
      body: rpc(4, "tools/list"),
    });
    r.o.upstreamMcpHeaders = t.lastUpstreamMcpHeaders();
  }
  await observe("Accept: application/json only", {
    method: "POST",
    headers: s("2025-11-25", { accept: "application/json" }),
    body: rpc(5, "tools/list"),
  });
  await observe("Content-Type: text/plain", {
    method: "POST",
    headers: s("2025-11-25", { "content-type": "text/plain" }),
    body: rpc(6, "tools/list"),
  });
  await observe("GET without Accept: text/event-stream", {
    method: "GET",
    headers: s("2025-11-25", { accept: "application/json" }),
  });

  // The standalone GET stream: the server has nothing to say yet, but the response
  // headers arrive at once and the stream is still open a second later.
  await observe(
    "GET standalone stream",
    { method: "GET", headers: s("2025-11-25", { accept: "text/event-stream" }) },
    undefined,
    1_000,
  );

  // Progress: three notifications in order, then the result, on one POST stream.
  await observe("tools/call with progress", {
    method: "POST",
    headers: s(),
    body: rpc(7, "tools/call", { name: "test_tool_with_progress", arguments: {}, _meta: { progressToken: "p-7" } }),
  });

  // Resumability: the tool closes its stream after the priming event; the result comes
  // on a GET that resumes after that event.
  const call = await observe("tools/call closing its stream mid-call", {
    method: "POST",
    headers: s(),
    body: rpc(8, "tools/call", { name: "test_reconnection", arguments: {} }),
  });
  const lastId = call.events.findLast((e) => e.id !== undefined)?.id ?? "";
  const resumed = await observe("GET with Last-Event-ID", {
    method: "GET",
    headers: s("2025-11-25", { accept: "text/event-stream", "last-event-id": lastId }),
  }, (e) => e.some((x) => x.data.includes('"id":8')));
  resumed.o.upstreamMcpHeaders = t.lastUpstreamMcpHeaders();

  // Session end.
  await observe("DELETE session", { method: "DELETE", headers: s() });
  await observe("POST after DELETE", { method: "POST", headers: s(), body: rpc(9, "tools/list") });
  return out;
}
