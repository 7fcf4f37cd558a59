import { assert, assertEquals } from "@std/assert";
import {
  type Cidr,
  cidrContains,
  clientAddress,
  isLoopbackHost,
  isTrusted,
  parseCidr,
  parseIp,
  urlHost,
} from "../../src/net.ts";

/** 16 bytes from 8 groups of hex, for readable expectations. */
function v6(...groups: number[]): Uint8Array {
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}
function v4(a: number, b: number, c: number, d: number): Uint8Array {
  return v6(0, 0, 0, 0, 0, 0xffff, (a << 8) | b, (c << 8) | d);
}

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  assert(c, `parseCidr(${JSON.stringify(text)})`);
  return c;
}
function ip(text: string): Uint8Array {
  const b = parseIp(text);
  assert(b, `parseIp(${JSON.stringify(text)})`);
  return b;
}

Deno.test("parseIp() parses IPv4 and IPv6 into 16 bytes", async (t) => {
  const cases: { description: string; input: string; expected: Uint8Array | undefined }[] = [
    { description: "IPv4", input: "192.168.1.1", expected: v4(192, 168, 1, 1) },
    { description: "IPv4 zeros", input: "0.0.0.0", expected: v4(0, 0, 0, 0) },
    { description: "IPv4 broadcast", input: "255.255.255.255", expected: v4(255, 255, 255, 255) },
    { description: "IPv4 with spaces", input: " 10.0.0.1 ", expected: v4(10, 0, 0, 1) },
    { description: "IPv6 loopback", input: "::1", expected: v6(0, 0, 0, 0, 0, 0, 0, 1) },
    { description: "IPv6 unspecified", input: "::", expected: v6() },
    { description: "IPv6 full", input: "2001:db8:1:2:3:4:5:6", expected: v6(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6) },
    { description: "IPv6 compressed middle", input: "2001:db8::1", expected: v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1) },
    { description: "IPv6 compressed end", input: "fe80::", expected: v6(0xfe80) },
    { description: "IPv6 upper case", input: "2001:DB8::A", expected: v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa) },
    { description: "IPv6 brackets", input: "[::1]", expected: v6(0, 0, 0, 0, 0, 0, 0, 1) },
    { description: "IPv6 zone", input: "fe80::1%eth0", expected: v6(0xfe80, 0, 0, 0, 0, 0, 0, 1) },
    { description: "IPv4-mapped IPv6", input: "::ffff:192.0.2.1", expected: v4(192, 0, 2, 1) },
    { description: "IPv4-mapped IPv6 in hex", input: "::ffff:c000:201", expected: v4(192, 0, 2, 1) },
    {
      description: "IPv6 with embedded IPv4",
      input: "64:ff9b::10.0.0.1",
      expected: v6(0x64, 0xff9b, 0, 0, 0, 0, 0x0a00, 1),
    },
    { description: "empty", input: "", expected: undefined },
    { description: "three IPv4 parts", input: "1.2.3", expected: undefined },
    { description: "five IPv4 parts", input: "1.2.3.4.5", expected: undefined },
    { description: "IPv4 part over 255", input: "256.1.1.1", expected: undefined },
    { description: "IPv4 negative part", input: "1.-2.3.4", expected: undefined },
    { description: "IPv4 with port", input: "1.2.3.4:80", expected: undefined },
    { description: "host name", input: "localhost", expected: undefined },
    { description: "two ::", input: "1::2::3", expected: undefined },
    { description: "IPv6 group too long", input: "12345::", expected: undefined },
    { description: "IPv6 nine groups", input: "1:2:3:4:5:6:7:8:9", expected: undefined },
    { description: "IPv6 seven groups", input: "1:2:3:4:5:6:7", expected: undefined },
    { description: ":: standing for no group", input: "1:2:3:4::5:6:7:8", expected: undefined },
    { description: "IPv6 bad hex", input: "2001:db8::g", expected: undefined },
    { description: "IPv6 bad embedded IPv4", input: "::ffff:1.2.3.256", expected: undefined },
    { description: "CIDR is not an address", input: "10.0.0.0/8", expected: undefined },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${JSON.stringify(input)}`, () => {
      assertEquals(parseIp(input), expected);
    });
  }
});

Deno.test("parseCidr() parses CIDRs and bare addresses", async (t) => {
  const cases: { description: string; input: string; expected: Cidr | undefined }[] = [
    { description: "IPv4 /8", input: "10.0.0.0/8", expected: { bytes: v4(10, 0, 0, 0), prefix: 104 } },
    { description: "IPv4 /0", input: "0.0.0.0/0", expected: { bytes: v4(0, 0, 0, 0), prefix: 96 } },
    { description: "IPv4 /32", input: "192.0.2.7/32", expected: { bytes: v4(192, 0, 2, 7), prefix: 128 } },
    { description: "bare IPv4 is /32", input: "192.0.2.7", expected: { bytes: v4(192, 0, 2, 7), prefix: 128 } },
    { description: "IPv6 /8", input: "fd00::/8", expected: { bytes: v6(0xfd00), prefix: 8 } },
    { description: "IPv6 /0", input: "::/0", expected: { bytes: v6(), prefix: 0 } },
    { description: "IPv6 /128", input: "::1/128", expected: { bytes: v6(0, 0, 0, 0, 0, 0, 0, 1), prefix: 128 } },
    { description: "bare IPv6 is /128", input: "::1", expected: { bytes: v6(0, 0, 0, 0, 0, 0, 0, 1), prefix: 128 } },
    {
      description: "IPv4-mapped IPv6 prefix",
      input: "::ffff:10.0.0.0/104",
      expected: { bytes: v4(10, 0, 0, 0), prefix: 104 },
    },
    { description: "IPv4 /33", input: "10.0.0.0/33", expected: undefined },
    { description: "IPv6 /129", input: "::/129", expected: undefined },
    { description: "empty prefix", input: "10.0.0.0/", expected: undefined },
    { description: "negative prefix", input: "10.0.0.0/-1", expected: undefined },
    { description: "prefix with letters", input: "10.0.0.0/8a", expected: undefined },
    { description: "two slashes", input: "10.0.0.0/8/9", expected: undefined },
    { description: "no address", input: "/8", expected: undefined },
    { description: "bad address", input: "10.0.0/8", expected: undefined },
    { description: "host name", input: "proxy.internal/32", expected: undefined },
    { description: "empty", input: "", expected: undefined },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(`${description}: ${JSON.stringify(input)}`, () => {
      assertEquals(parseCidr(input), expected);
    });
  }
});

Deno.test("cidrContains() matches addresses by prefix", async (t) => {
  const cases: { description: string; input: [string, string]; expected: boolean }[] = [
    { description: "IPv4 /8 inside", input: ["10.0.0.0/8", "10.255.255.255"], expected: true },
    { description: "IPv4 /8 outside", input: ["10.0.0.0/8", "11.0.0.0"], expected: false },
    { description: "IPv4 /23 upper half", input: ["192.168.0.0/23", "192.168.1.255"], expected: true },
    { description: "IPv4 /23 next block", input: ["192.168.0.0/23", "192.168.2.0"], expected: false },
    { description: "IPv4 /31", input: ["192.0.2.4/31", "192.0.2.5"], expected: true },
    { description: "IPv4 /31 outside", input: ["192.0.2.4/31", "192.0.2.6"], expected: false },
    { description: "IPv4 /32 same", input: ["192.0.2.7/32", "192.0.2.7"], expected: true },
    { description: "IPv4 /32 neighbour", input: ["192.0.2.7/32", "192.0.2.8"], expected: false },
    { description: "IPv4 host bits in the CIDR are ignored", input: ["10.1.2.3/8", "10.9.9.9"], expected: true },
    { description: "IPv4 /0 holds every IPv4", input: ["0.0.0.0/0", "203.0.113.9"], expected: true },
    { description: "IPv4 /0 does not hold IPv6", input: ["0.0.0.0/0", "2001:db8::1"], expected: false },
    { description: "IPv4 CIDR holds the IPv4-mapped form", input: ["10.0.0.0/8", "::ffff:10.1.2.3"], expected: true },
    { description: "IPv4-mapped CIDR holds plain IPv4", input: ["::ffff:10.0.0.0/104", "10.1.2.3"], expected: true },
    { description: "IPv6 /32 inside", input: ["2001:db8::/32", "2001:db8:ffff::1"], expected: true },
    { description: "IPv6 /32 outside", input: ["2001:db8::/32", "2001:db9::"], expected: false },
    { description: "IPv6 /8", input: ["fd00::/8", "fdff:1::1"], expected: true },
    { description: "IPv6 /7 unique local", input: ["fc00::/7", "fd12::1"], expected: true },
    { description: "IPv6 /128 same", input: ["::1/128", "::1"], expected: true },
    { description: "IPv6 /128 other", input: ["::1/128", "::2"], expected: false },
    { description: "IPv6 /0 holds everything", input: ["::/0", "10.0.0.1"], expected: true },
    { description: "IPv6 loopback is not IPv4 loopback", input: ["127.0.0.0/8", "::1"], expected: false },
  ];
  for (const { description, input: [c, a], expected } of cases) {
    await t.step(`${description}: ${c} ∋ ${a}`, () => {
      assertEquals(cidrContains(cidr(c), ip(a)), expected);
    });
  }
});

Deno.test("isTrusted() is false for no proxies and for junk addresses", () => {
  assertEquals(isTrusted("10.0.0.1", []), false);
  assertEquals(isTrusted("not-an-ip", [cidr("0.0.0.0/0"), cidr("::/0")]), false);
  assertEquals(isTrusted("", [cidr("0.0.0.0/0")]), false);
  assertEquals(isTrusted("10.0.0.1", [cidr("192.0.2.0/24"), cidr("10.0.0.0/8")]), true);
});

Deno.test("clientAddress() believes forwarding headers only from trusted proxies", async (t) => {
  const proxies = [cidr("10.0.0.0/8"), cidr("fd00::/8")];
  const cases: {
    description: string;
    input: { peer: string; headers: Record<string, string>; trusted?: Cidr[] };
    expected: string;
  }[] = [
    {
      description: "no trusted proxies: peer, headers ignored",
      input: { peer: "203.0.113.9", headers: { "x-forwarded-for": "1.2.3.4", "x-real-ip": "5.6.7.8" }, trusted: [] },
      expected: "203.0.113.9",
    },
    {
      description: "untrusted peer: headers ignored",
      input: { peer: "203.0.113.9", headers: { "x-forwarded-for": "1.2.3.4", "x-real-ip": "5.6.7.8" } },
      expected: "203.0.113.9",
    },
    {
      description: "trusted peer, one hop",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "198.51.100.7" } },
      expected: "198.51.100.7",
    },
    {
      description: "trusted peer, chain through a second trusted proxy",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "198.51.100.7, 10.0.0.2" } },
      expected: "198.51.100.7",
    },
    {
      description: "spoofed left-most entry is not believed",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "1.1.1.1, 198.51.100.7, 10.0.0.2" } },
      expected: "198.51.100.7",
    },
    {
      description: "every hop trusted: the left-most",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "10.0.0.3,10.0.0.2" } },
      expected: "10.0.0.3",
    },
    {
      description: "IPv6 hops",
      input: { peer: "fd00::1", headers: { "x-forwarded-for": "2001:db8::7, fd00::2" } },
      expected: "2001:db8::7",
    },
    {
      description: "empty entries skipped",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": ", 198.51.100.7,, " } },
      expected: "198.51.100.7",
    },
    {
      description: "junk in the chain stops the walk; X-Real-IP used",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "garbage, 10.0.0.2", "x-real-ip": "198.51.100.8" } },
      expected: "198.51.100.8",
    },
    {
      description: "junk right-most entry, no X-Real-IP: peer",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "198.51.100.7, garbage" } },
      expected: "10.0.0.1",
    },
    {
      description: "X-Real-IP alone",
      input: { peer: "10.0.0.1", headers: { "x-real-ip": " 198.51.100.8 " } },
      expected: "198.51.100.8",
    },
    {
      description: "X-Forwarded-For wins over X-Real-IP",
      input: { peer: "10.0.0.1", headers: { "x-forwarded-for": "198.51.100.7", "x-real-ip": "198.51.100.8" } },
      expected: "198.51.100.7",
    },
    {
      description: "bad X-Real-IP: peer",
      input: { peer: "10.0.0.1", headers: { "x-real-ip": "unknown" } },
      expected: "10.0.0.1",
    },
    {
      description: "trusted peer without headers: peer",
      input: { peer: "10.0.0.1", headers: {} },
      expected: "10.0.0.1",
    },
    {
      description: "trusted peer in IPv4-mapped form",
      input: { peer: "::ffff:10.0.0.1", headers: { "x-forwarded-for": "198.51.100.7" } },
      expected: "198.51.100.7",
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      assertEquals(clientAddress(input.peer, new Headers(input.headers), input.trusted ?? proxies), expected);
    });
  }
});

Deno.test("urlHost() brackets IPv6 addresses once and leaves names and IPv4 alone", () => {
  assertEquals(["::1", "[::1]", "127.0.0.1", "mcp.example.com", "fd00::2"].map(urlHost), [
    "[::1]",
    "[::1]",
    "127.0.0.1",
    "mcp.example.com",
    "[fd00::2]",
  ]);
});

Deno.test("isLoopbackHost() knows localhost, 127.0.0.0/8 and ::1, bracketed or not", () => {
  assertEquals(
    ["localhost", "127.0.0.1", "127.9.8.7", "::1", "[::1]", "0.0.0.0", "::", "128.0.0.1", "mcp.example.com"]
      .map(isLoopbackHost),
    [true, true, true, true, true, false, false, false, false],
  );
});
