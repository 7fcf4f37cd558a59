/**
 * DEMO ONLY: a tiny hand-written MCP server (Streamable HTTP) for `mcp-gate demo`.
 *
 * It ships inside the gateway binary, so it has no SDK dependency. Enough of the
 * protocol for a client to initialize, list tools and call them: `echo`, `whoami` (shows
 * the identity headers the gateway passed on) and `countdown`, which streams
 * notifications/progress over an SSE response when the call carries a progressToken.
 *
 * Not implemented: batches, resumable streams (Last-Event-ID), the GET stream (405),
 * server-to-client requests. Sessions live in memory, bounded.
 */

export const ProtocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"] as const;
const MaxSessions = 1000;
const Countdown = { defaultCount: 5, maxCount: 20, defaultDelayMs: 500, minDelayMs: 10, maxDelayMs: 5000 };

export interface DemoMcpServerOptions {
  /** Server version in serverInfo. */
  version: string;
  /** Called when a response will stream: lifts the runtime's idle timeout for it. */
  disableTimeouts?: (req: Request) => void;
}

type Id = string | number;
interface Message {
  jsonrpc: "2.0";
  id?: Id;
  method?: string;
  params?: Record<string, unknown>;
}

const Tools = [
  {
    name: "echo",
    title: "Echo",
    description: "Returns the text it was given.",
    inputSchema: {
      type: "object",
      properties: { text: { type: "string", description: "Text to echo back" } },
      required: ["text"],
    },
  },
  {
    name: "whoami",
    title: "Who am I",
    description: "Shows the identity the gateway verified and passed on (X-Auth-* headers).",
    inputSchema: { type: "object", properties: {} },
  },
  {
    name: "countdown",
    title: "Countdown",
    description: "Counts down, sending a progress notification at each step when the call has a progressToken.",
    inputSchema: {
      type: "object",
      properties: {
        count: { type: "integer", minimum: 1, maximum: Countdown.maxCount, default: Countdown.defaultCount },
        delay_ms: {
          type: "integer",
          minimum: Countdown.minDelayMs,
          maximum: Countdown.maxDelayMs,
          default: Countdown.defaultDelayMs,
        },
      },
    },
  },
];

class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

const encoder = new TextEncoder();

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function rpcError(id: Id | null, code: number, message: string, status = 200): Response {
  return jsonResponse(status, { jsonrpc: "2.0", id, error: { code, message } });
}

function sseEvent(message: unknown): Uint8Array {
  return encoder.encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}

function intArg(args: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = args[name];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new RpcError(-32602, `Argument ${name} must be an integer from ${min} to ${max}`);
  }
  return v;
}

/** Resolves after ms, or at once when signal aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

export interface DemoMcpServer {
  fetch(req: Request): Promise<Response>;
  /** Sessions currently open (for tests). */
  readonly sessions: number;
}

export function createDemoMcpServer(opts: DemoMcpServerOptions): DemoMcpServer {
  return new DemoMcp(opts);
}

class DemoMcp implements DemoMcpServer {
  readonly #opts: DemoMcpServerOptions;
  readonly #sessions = new Set<string>();

  constructor(opts: DemoMcpServerOptions) {
    this.#opts = opts;
  }

  #initialize(msg: Message): Response {
    const requested = msg.params?.protocolVersion;
    const protocolVersion = ProtocolVersions.includes(requested as typeof ProtocolVersions[number])
      ? requested
      : ProtocolVersions[0];
    const session = crypto.randomUUID();
    if (this.#sessions.size >= MaxSessions) this.#sessions.delete(this.#sessions.values().next().value!);
    this.#sessions.add(session);
    return jsonResponse(200, {
      jsonrpc: "2.0",
      id: msg.id,
      result: {
        protocolVersion,
        capabilities: { tools: { listChanged: false } },
        serverInfo: { name: "mcp-gate-demo", title: "mcp-gate demo server", version: this.#opts.version },
        instructions: "A demo server behind mcp-gate. Tools: echo, whoami, countdown. NOT FOR PRODUCTION.",
      },
    }, { "mcp-session-id": session });
  }

  #callTool(req: Request, msg: Message): Response {
    const params = msg.params ?? {};
    const args = (params.arguments ?? {}) as Record<string, unknown>;
    const result = (text: string) => jsonResponse(200, { jsonrpc: "2.0", id: msg.id, result: textResult(text) });
    switch (params.name) {
      case "echo":
        if (typeof args.text !== "string") throw new RpcError(-32602, "Argument text must be a string");
        return result(args.text);
      case "whoami":
        return result(JSON.stringify({
          subject: req.headers.get("x-auth-subject"),
          scopes: req.headers.get("x-auth-scopes"),
          client_id: req.headers.get("x-auth-client-id"),
          authorization_header_reached_server: req.headers.has("authorization"),
        }));
      case "countdown":
        return this.#countdown(req, msg, args);
      default:
        throw new RpcError(-32602, `Unknown tool: ${JSON.stringify(params.name)}`);
    }
  }

  #countdown(req: Request, msg: Message, args: Record<string, unknown>): Response {
    const count = intArg(args, "count", Countdown.defaultCount, 1, Countdown.maxCount);
    const delayMs = intArg(args, "delay_ms", Countdown.defaultDelayMs, Countdown.minDelayMs, Countdown.maxDelayMs);
    const meta = msg.params?._meta as Record<string, unknown> | undefined;
    const progressToken = meta?.progressToken;
    const wantsSse = (req.headers.get("accept") ?? "").includes("text/event-stream");
    const final = { jsonrpc: "2.0", id: msg.id, result: textResult(`Liftoff after ${count} steps`) };
    const stop = new AbortController();

    if (progressToken === undefined || !wantsSse) {
      // No one to report progress to: wait the same total time, answer with plain JSON.
      return new Response(
        new ReadableStream({
          async start(controller) {
            await pause(count * delayMs, stop.signal);
            if (stop.signal.aborted) return;
            controller.enqueue(encoder.encode(JSON.stringify(final)));
            controller.close();
          },
          cancel: () => stop.abort(),
        }),
        { headers: { "content-type": "application/json" } },
      );
    }

    this.#opts.disableTimeouts?.(req);
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        for (let step = 1; step <= count && !stop.signal.aborted; step++) {
          await pause(delayMs, stop.signal);
          if (stop.signal.aborted) break;
          controller.enqueue(sseEvent({
            jsonrpc: "2.0",
            method: "notifications/progress",
            params: { progressToken, progress: step, total: count, message: `${count - step}…` },
          }));
        }
        if (!stop.signal.aborted) {
          controller.enqueue(sseEvent(final));
          controller.close();
        }
      },
      cancel: () => stop.abort(),
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  }

  async #post(req: Request): Promise<Response> {
    let msg: Message;
    try {
      msg = await req.json();
    } catch {
      return rpcError(null, -32700, "Parse error: the body is not JSON", 400);
    }
    if (Array.isArray(msg)) return rpcError(null, -32600, "Batches are not supported", 400);
    if (!msg || typeof msg !== "object" || msg.jsonrpc !== "2.0") {
      return rpcError(null, -32600, "Invalid Request: expected a JSON-RPC 2.0 message", 400);
    }
    if (msg.method === "initialize") return this.#initialize(msg);

    const session = req.headers.get("mcp-session-id");
    if (session === null) return rpcError(null, -32000, "Bad Request: Mcp-Session-Id header is required", 400);
    if (!this.#sessions.has(session)) return rpcError(null, -32001, "Session not found", 404);
    const version = req.headers.get("mcp-protocol-version");
    if (version !== null && !ProtocolVersions.includes(version as typeof ProtocolVersions[number])) {
      return rpcError(null, -32000, `Bad Request: unsupported MCP-Protocol-Version ${version}`, 400);
    }

    // Notifications and responses from the client: accepted, nothing to say.
    if (msg.id === undefined || msg.method === undefined) return new Response(null, { status: 202 });
    try {
      switch (msg.method) {
        case "ping":
          return jsonResponse(200, { jsonrpc: "2.0", id: msg.id, result: {} });
        case "tools/list":
          return jsonResponse(200, { jsonrpc: "2.0", id: msg.id, result: { tools: Tools } });
        case "tools/call":
          return this.#callTool(req, msg);
        default:
          return rpcError(msg.id, -32601, `Method not found: ${msg.method}`);
      }
    } catch (e) {
      if (e instanceof RpcError) return rpcError(msg.id, e.code, e.message);
      throw e;
    }
  }

  async fetch(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path !== "/mcp") {
      return jsonResponse(404, { error: "not_found", error_description: "The MCP endpoint is /mcp" });
    }
    switch (req.method) {
      case "POST":
        return await this.#post(req);
      case "DELETE": {
        const session = req.headers.get("mcp-session-id");
        if (session === null || !this.#sessions.delete(session)) {
          return rpcError(null, -32001, "Session not found", 404);
        }
        return new Response(null, { status: 204 });
      }
      default:
        // No server-initiated stream in this demo: GET is refused as the spec allows.
        return new Response(null, { status: 405, headers: { allow: "POST, DELETE" } });
    }
  }

  get sessions(): number {
    return this.#sessions.size;
  }
}

function textResult(text: string) {
  return { content: [{ type: "text", text }], isError: false };
}
