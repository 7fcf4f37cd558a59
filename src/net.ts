/**
 * IP addresses and CIDRs, for TRUSTED_PROXIES and the client address. Addresses are
 * compared as 16-byte IPv6 (IPv4 mapped into ::ffff:0:0/96), so one code path serves both.
 */

export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    out[12 + i] = Number(p);
  }
  return out;
}

function parseIPv6(text: string): Uint8Array | undefined {
  let head = text;
  let v4: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    v4 = parseIPv4(text.slice(lastColon + 1));
    if (!v4) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...left, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  }
  if (v4) out.set(v4.subarray(12), 12);
  return out;
}

/** Parses an IPv4 or IPv6 address (brackets and a zone allowed) to 16 bytes. */
export function parseIp(text: string): Uint8Array | undefined {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone >= 0) t = t.slice(0, zone);
  return t.includes(":") ? parseIPv6(t) : parseIPv4(t);
}

/** Parses "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const [addr, prefixText, extra] = text.split("/");
  if (addr === undefined || extra !== undefined) return undefined;
  const bytes = parseIp(addr);
  if (!bytes) return undefined;
  const isV4 = !addr.includes(":");
  const max = isV4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  return { bytes, prefix: isV4 ? prefix + 96 : prefix };
}

export function cidrContains(cidr: Cidr, ip: Uint8Array): boolean {
  let bits = cidr.prefix;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((cidr.bytes[i]! & mask) !== (ip[i]! & mask)) return false;
  }
  return true;
}

/** A hostname as it appears in a URL: IPv6 addresses in brackets. */
export function urlHost(hostname: string): string {
  return hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
}

/** localhost, 127.0.0.0/8 or ::1, bracketed or not. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname === "[::1]" ||
    /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** True when `addr` lies in one of the CIDRs. */
export function isTrusted(addr: string, trusted: readonly Cidr[]): boolean {
  if (trusted.length === 0) return false;
  const ip = parseIp(addr);
  return ip !== undefined && trusted.some((c) => cidrContains(c, ip));
}

/**
 * The client's address: the socket peer, or — only when the peer is a trusted proxy —
 * the right-most untrusted address of X-Forwarded-For, else X-Real-IP.
 */
export function clientAddress(
  peer: string,
  headers: Headers,
  trusted: readonly Cidr[],
): string {
  if (!isTrusted(peer, trusted)) return peer;
  const xff = headers.get("x-forwarded-for");
  if (xff) {
    const hops = xff.split(",").map((s) => s.trim()).filter((s) => s !== "");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (parseIp(hop) === undefined) break;
      if (!isTrusted(hop, trusted) || i === 0) return hop;
    }
  }
  const real = headers.get("x-real-ip")?.trim();
  if (real && parseIp(real)) return real;
  return peer;
}
