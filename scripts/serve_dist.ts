/**
 * A static file server for dist/ on loopback, so that the bundle can be run the way users
 * run it: `deno run … http://127.0.0.1:PORT/mcp-gate.js`. Prints its base URL as the first
 * line of stdout, then serves GET/HEAD until stopped.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-read=dist scripts/serve_dist.ts [dir] [--port=N]
 */

const Types: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
};

export interface StaticServer {
  /** Base URL, ending in "/". */
  url: string;
  /** Paths requested so far, in order (to tell a cache hit from a download). */
  requests: string[];
  close(): Promise<void>;
}

/** Serves the files directly inside `dir` (no subdirectories, no listing) on 127.0.0.1. */
export function serveDir(dir: string, port = 0): StaticServer {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    requests.push(path);
    const name = decodeURIComponent(path.slice(1));
    if (req.method !== "GET" && req.method !== "HEAD") return new Response(null, { status: 405 });
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return new Response("not found\n", { status: 404 });
    try {
      const body = await Deno.readFile(`${dir}/${name}`);
      const type = Types[name.split(".").pop() ?? ""] ?? "application/octet-stream";
      return new Response(req.method === "HEAD" ? null : body, {
        headers: { "content-type": type, "content-length": String(body.byteLength) },
      });
    } catch {
      return new Response("not found\n", { status: 404 });
    }
  });
  return {
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`,
    requests,
    close: () => server.shutdown(),
  };
}

if (import.meta.main) {
  let dir = new URL("../dist", import.meta.url).pathname;
  let port = 0;
  for (const a of Deno.args) {
    if (a.startsWith("--port=")) port = Number(a.slice("--port=".length));
    else dir = a;
  }
  const server = serveDir(dir.replace(/\/+$/, ""), port);
  console.log(server.url);
  for (const s of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(s, () => server.close().then(() => Deno.exit(0)));
  }
}
