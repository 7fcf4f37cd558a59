/**
 * The upstream for the load scripts, in its own process so that it does not share an
 * event loop with the load generator: Deno.serve on 127.0.0.1:0.
 *
 *   POST /mcp                 a small JSON-RPC result
 *   GET  /sse?events=N&interval_ms=I&stream=K
 *                             N events, one every I ms, then `event: end` and close.
 *                             Event i carries {"k":K,"i":i,"t":<ms since epoch when sent>}.
 *
 * One timer drives every open stream (not one per stream). Prints one JSON line
 * {"port":N} when listening; on SIGTERM prints {"streams_opened","streams_completed",
 * "streams_cancelled","events_sent"} and exits.
 */
const encoder = new TextEncoder();

interface Stream {
  k: string;
  next: number;
  total: number;
  every: number;
  due: number;
  controller: ReadableStreamDefaultController<Uint8Array>;
}

const streams = new Set<Stream>();
const stats = { streams_opened: 0, streams_completed: 0, streams_cancelled: 0, events_sent: 0 };

const ticker = setInterval(() => {
  const now = Date.now();
  for (const s of streams) {
    while (s.due <= now && s.next <= s.total) {
      const i = s.next++;
      s.due += s.every;
      try {
        s.controller.enqueue(encoder.encode(`id: ${i}\ndata: {"k":${JSON.stringify(s.k)},"i":${i},"t":${now}}\n\n`));
        stats.events_sent++;
      } catch {
        streams.delete(s);
        break;
      }
    }
    if (s.next > s.total && streams.has(s)) {
      try {
        s.controller.enqueue(encoder.encode(`event: end\ndata: {"k":${JSON.stringify(s.k)},"sent":${s.total}}\n\n`));
        s.controller.close();
      } catch { /* cancelled */ }
      streams.delete(s);
      stats.streams_completed++;
    }
  }
}, 5);

const RESULT = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { tools: [] } });

const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/sse") {
    const total = Number(url.searchParams.get("events") ?? "100");
    const every = Number(url.searchParams.get("interval_ms") ?? "100");
    const k = url.searchParams.get("stream") ?? "";
    stats.streams_opened++;
    let stream: Stream;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        stream = { k, next: 1, total, every, due: Date.now(), controller };
        streams.add(stream);
      },
      cancel() {
        if (streams.delete(stream)) stats.streams_cancelled++;
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
  }
  if (req.body) await req.body.cancel();
  return new Response(RESULT, { headers: { "content-type": "application/json" } });
});

console.log(JSON.stringify({ port: server.addr.port }));

Deno.addSignalListener("SIGTERM", () => {
  clearInterval(ticker);
  console.log(JSON.stringify(stats));
  Deno.exit(0);
});
void server;
