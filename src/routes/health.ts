/** Liveness (`/healthz`: the process serves) and readiness (`/readyz`: keys are loaded). */

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });

export function healthz(): Response {
  return json(200, { status: "ok" });
}

export function readyz(ready: boolean): Response {
  return ready ? json(200, { status: "ready" }) : json(503, { status: "starting", reason: "keys not loaded" });
}
