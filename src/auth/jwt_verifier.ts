/**
 * The JWT path, assembled from the configuration: one key set per authorization server
 * (or one for a fixed JWKS_URI), the verified-token cache, and the verifier over them.
 * The key sets are a Service: loaded at start-up, refreshed until closed.
 */
import type { Config } from "../config.ts";
import type { Logger } from "../logging.ts";
import type { GatewayMetrics } from "../metrics.ts";
import type { Service } from "./identity.ts";
import { KeySet } from "./key_set.ts";
import { TokenCache } from "./token_cache.ts";
import { TokenVerifier } from "./verify_token.ts";
import type { TokenDigest } from "./digest.ts";
import type { SignatureCheck } from "./signature.ts";

export interface JwtDeps {
  fetch: typeof fetch;
  now: () => number;
  log: Logger;
  metrics: GatewayMetrics | undefined;
  digest?: TokenDigest | undefined;
  signatureCheck?: SignatureCheck | undefined;
}

export function createJwtVerifier(config: Config, deps: JwtDeps): { verifier: TokenVerifier; keys: Service } {
  const { fetch, now, log, metrics } = deps;
  const newKeySet = (issuer: string, jwksUri: string | undefined): KeySet => {
    const keySet: KeySet = new KeySet({
      issuer,
      jwksUri,
      fetch,
      now,
      log,
      refreshIntervalMs: config.jwksRefreshIntervalMs,
      cooldownMs: config.jwksRefetchCooldownMs,
      timeoutMs: config.jwksFetchTimeoutMs,
      ...(metrics
        ? { onFetch: (outcome, keys) => metrics.jwksFetch(outcome === "ok", keys, issuer, keySet.version, now()) }
        : {}),
    });
    return keySet;
  };
  const keySets: KeySet[] = config.jwksUri !== undefined
    ? [newKeySet(config.authorizationServers[0]!, config.jwksUri)]
    : config.authorizationServers.map((issuer) => newKeySet(issuer, undefined));
  const byIssuer = new Map(keySets.map((k) => [k.issuer, k]));
  const verifier = new TokenVerifier({
    config,
    keysFor: (iss) => byIssuer.get(iss) ?? keySets[0]!,
    keyVersion: () => keySets.reduce((sum, k) => sum + k.version, 0),
    now,
    digest: deps.digest,
    signatureCheck: deps.signatureCheck,
    cache: config.tokenCacheSize > 0
      ? new TokenCache({
        maxEntries: config.tokenCacheSize,
        maxBytes: 64 * 1024 * 1024,
        ttlCapMs: 10 * 60_000,
        negativeTtlMs: 60_000,
        negativeMaxEntries: 1024,
        skewMs: config.clockSkewSeconds * 1000,
        now,
      })
      : undefined,
  });
  const keys: Service = {
    start: async () => {
      await Promise.all(keySets.map((k) => k.start()));
    },
    get ready() {
      return keySets.every((k) => k.ready);
    },
    close: () => {
      for (const k of keySets) k.close();
    },
  };
  return { verifier, keys };
}
