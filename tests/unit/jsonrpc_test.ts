import { assertEquals } from "@std/assert";
import { classifyBody, jsonRpcErrorBody } from "../../src/policy/jsonrpc.ts";
import { findDuplicateKey } from "../../src/policy/json_keys.ts";

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** The 400 body the gateway answers a refused body with. */
function refusal(text: string | Uint8Array): string | undefined {
  const c = classifyBody(typeof text === "string" ? bytes(text) : text);
  return c.ok ? undefined : jsonRpcErrorBody(c.error.id, c.error.code, c.error.message);
}

Deno.test("classifyBody() reads one message: method, name or uri, id", async (t) => {
  const cases: { description: string; input: string; expected: unknown }[] = [
    {
      description: "tools/call names its tool",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x"}}}',
      expected: [{ method: "tools/call", name: "echo", id: 1 }],
    },
    {
      description: "prompts/get names its prompt",
      input: '{"jsonrpc":"2.0","id":"a","method":"prompts/get","params":{"name":"greet"}}',
      expected: [{ method: "prompts/get", name: "greet", id: "a" }],
    },
    {
      description: "resources/read names its uri",
      input: '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a","name":"ignored"}}',
      expected: [{ method: "resources/read", name: "file:///a", id: 2 }],
    },
    {
      description: "resources/subscribe and unsubscribe name their uri",
      input: '[{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"u:1"}},' +
        '{"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":"u:2"}}]',
      expected: [{ method: "resources/subscribe", name: "u:1", id: 1 }, {
        method: "resources/unsubscribe",
        name: "u:2",
        id: 2,
      }],
    },
    {
      description: "params.name of another method is no name",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x"}}',
      expected: [{ method: "tools/list", name: undefined, id: 1 }],
    },
    {
      description: "tools/call without params has no name",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call"}',
      expected: [{ method: "tools/call", name: undefined, id: 1 }],
    },
    {
      description: "tools/call with positional params has no name",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}',
      expected: [{ method: "tools/call", name: undefined, id: 1 }],
    },
    {
      description: "a notification",
      input: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      expected: [{ method: "notifications/initialized", name: undefined, id: null }],
    },
    {
      description: "a response",
      input: '{"jsonrpc":"2.0","id":7,"result":{}}',
      expected: [{ method: undefined, name: undefined, id: 7 }],
    },
    {
      description: "an error response",
      input: '{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}',
      expected: [{ method: undefined, name: undefined, id: 7 }],
    },
    {
      description: "escaped key and value",
      input: '{"jsonrpc":"2.0","id":1,"\\u006dethod":"tools/call","params":{"na\\u006de":"d\\u00e9l"}}',
      expected: [{ method: "tools/call", name: "dél", id: 1 }],
    },
    {
      description: "whitespace around",
      input: ' \n\t{ "jsonrpc" : "2.0" , "id" : 1 , "method" : "ping" } \r\n',
      expected: [{ method: "ping", name: undefined, id: 1 }],
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      const c = classifyBody(bytes(input));
      assertEquals(c.ok ? c.messages : c, expected);
    });
  }
});

Deno.test("classifyBody() reads a batch, every message in order", () => {
  const c = classifyBody(bytes(
    '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call",' +
      '"params":{"name":"delete_all"}},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}},' +
      '{"jsonrpc":"2.0","id":9,"result":{}}]',
  ));
  assertEquals(c, {
    ok: true,
    batch: true,
    messages: [
      { method: "tools/list", name: undefined, id: 1 },
      { method: "tools/call", name: "delete_all", id: 2 },
      { method: "notifications/cancelled", name: undefined, id: null },
      { method: undefined, name: undefined, id: 9 },
    ],
  });
  const single = classifyBody(bytes('{"jsonrpc":"2.0","id":1,"method":"ping"}'));
  assertEquals(single.ok && single.batch, false);
  const one = classifyBody(bytes('[{"jsonrpc":"2.0","id":1,"method":"ping"}]'));
  assertEquals(one.ok && one.batch, true);
});

const parseError =
  '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the body is not valid JSON"}}';
const invalid = (id: string, message: string) =>
  `{"jsonrpc":"2.0","id":${id},"error":{"code":-32600,"message":"Invalid Request: ${message}"}}`;

Deno.test("classifyBody() refuses what is not JSON with -32700 and id null", async (t) => {
  const cases: { description: string; input: string | Uint8Array }[] = [
    { description: "empty body", input: "" },
    { description: "whitespace only", input: "  \n" },
    { description: "truncated", input: '{"jsonrpc":"2.0","id":1,"method":"ping"' },
    { description: "trailing garbage", input: '{"jsonrpc":"2.0","id":1,"method":"ping"} x' },
    { description: "two messages back to back", input: '{"jsonrpc":"2.0","method":"a"}{"jsonrpc":"2.0","method":"b"}' },
    { description: "single quotes", input: "{'jsonrpc':'2.0'}" },
    { description: "trailing comma", input: '{"jsonrpc":"2.0","method":"ping",}' },
    { description: "comment", input: '{"jsonrpc":"2.0","method":"ping"} // hi' },
    { description: "form data", input: "method=tools%2Fcall&name=x" },
    { description: "invalid UTF-8", input: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) },
    { description: "byte order mark", input: new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('{"jsonrpc":"2.0"}')]) },
  ];
  for (const { description, input } of cases) {
    await t.step(description, () => assertEquals(refusal(input), parseError));
  }
});

Deno.test("classifyBody() refuses what is not a valid JSON-RPC message with -32600", async (t) => {
  const cases: { description: string; input: string; expected: string }[] = [
    { description: "a number", input: "42", expected: invalid("null", "the body is not a JSON-RPC message or batch") },
    { description: "a string", input: '"x"', expected: invalid("null", "the body is not a JSON-RPC message or batch") },
    { description: "null", input: "null", expected: invalid("null", "the body is not a JSON-RPC message or batch") },
    { description: "empty batch", input: "[]", expected: invalid("null", "the batch is empty") },
    { description: "empty batch with spaces", input: " [ ] ", expected: invalid("null", "the batch is empty") },
    {
      description: "batch element a number",
      input: '[{"jsonrpc":"2.0","id":1,"method":"ping"},1]',
      expected: invalid("null", "a batch element is not an object"),
    },
    {
      description: "batch element an array",
      input: '[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]',
      expected: invalid("null", "a batch element is not an object"),
    },
    {
      description: "batch element null",
      input: '[{"jsonrpc":"2.0","id":1,"method":"ping"},null]',
      expected: invalid("null", "a batch element is not an object"),
    },
    {
      description: "no jsonrpc",
      input: '{"id":3,"method":"ping"}',
      expected: invalid("3", '\\"jsonrpc\\" must be \\"2.0\\"'),
    },
    {
      description: "jsonrpc 1.0",
      input: '{"jsonrpc":"1.0","id":"x","method":"ping"}',
      expected: invalid('"x"', '\\"jsonrpc\\" must be \\"2.0\\"'),
    },
    {
      description: "jsonrpc as a number",
      input: '{"jsonrpc":2.0,"id":3,"method":"ping"}',
      expected: invalid("3", '\\"jsonrpc\\" must be \\"2.0\\"'),
    },
    {
      description: "method a number",
      input: '{"jsonrpc":"2.0","id":4,"method":7}',
      expected: invalid("4", '\\"method\\" must be a string'),
    },
    {
      description: "method null",
      input: '{"jsonrpc":"2.0","id":4,"method":null}',
      expected: invalid("4", '\\"method\\" must be a string'),
    },
    {
      description: "method an array",
      input: '{"jsonrpc":"2.0","id":4,"method":["tools/call"]}',
      expected: invalid("4", '\\"method\\" must be a string'),
    },
    {
      description: "neither method nor result nor error",
      input: '{"jsonrpc":"2.0","id":5}',
      expected: invalid("5", 'a message needs a \\"method\\", or a \\"result\\" or \\"error\\"'),
    },
    {
      description: "params a string",
      input: '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":"echo"}',
      expected: invalid("6", '\\"params\\" must be an object or an array'),
    },
    {
      description: "params null",
      input: '{"jsonrpc":"2.0","id":6,"method":"ping","params":null}',
      expected: invalid("6", '\\"params\\" must be an object or an array'),
    },
    {
      description: "tool name not a string",
      input: '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":["delete_all"]}}',
      expected: invalid("8", '\\"params.name\\" must be a string'),
    },
    {
      description: "resource uri not a string",
      input: '{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":{"href":"x"}}}',
      expected: invalid("8", '\\"params.uri\\" must be a string'),
    },
    {
      description: "unreadable id (object) becomes null",
      input: '{"jsonrpc":"1.0","id":{"a":1},"method":"ping"}',
      expected: invalid("null", '\\"jsonrpc\\" must be \\"2.0\\"'),
    },
    {
      description: "unreadable id (boolean) becomes null",
      input: '{"jsonrpc":"1.0","id":true,"method":"ping"}',
      expected: invalid("null", '\\"jsonrpc\\" must be \\"2.0\\"'),
    },
    {
      description: "batch: the first invalid message's id",
      input: '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":3},{"id":3}]',
      expected: invalid("2", '\\"method\\" must be a string'),
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(refusal(input), expected));
  }
});

Deno.test("classifyBody() refuses method, params, name or uri given twice", async (t) => {
  const cases: { description: string; input: string; expected: string | undefined }[] = [
    {
      description: "method twice",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}',
      expected: invalid("1", '\\"method\\" is given twice'),
    },
    {
      description: "method twice, one escaped",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/list","\\u006d\\u0065thod":"tools/call"}',
      expected: invalid("1", '\\"method\\" is given twice'),
    },
    {
      description: "params twice",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}',
      expected: invalid("1", '\\"params\\" is given twice'),
    },
    {
      description: "params twice, the first not an object",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1],"params":{"name":"b"}}',
      expected: invalid("1", '\\"params\\" is given twice'),
    },
    {
      description: "name twice",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","arguments":{},"name":"delete"}}',
      expected: invalid("1", '\\"name\\" is given twice'),
    },
    {
      description: "name twice, escaped slash-free",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","n\\u0061me":"delete"}}',
      expected: invalid("1", '\\"name\\" is given twice'),
    },
    {
      description: "uri twice",
      input: '{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"a:1","uri":"a:2"}}',
      expected: invalid('"r"', '\\"uri\\" is given twice'),
    },
    {
      description: "name twice in params of any method",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"a","name":"b"}}',
      expected: invalid("1", '\\"name\\" is given twice'),
    },
    {
      description: "batch: the duplicate in the second message",
      input: '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"a","method":"b"}]',
      expected: invalid("2", '\\"method\\" is given twice'),
    },
    {
      description: "name twice inside arguments is fine",
      input: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"name":1,"name":2}}}',
      expected: undefined,
    },
    {
      description: "method twice inside params is fine",
      input: '{"jsonrpc":"2.0","id":1,"method":"x","params":{"method":1,"method":2}}',
      expected: undefined,
    },
    {
      description: "id twice is not watched",
      input: '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
      expected: undefined,
    },
    {
      description: "a key that contains the name",
      input: '{"jsonrpc":"2.0","id":1,"method":"x","methods":"y","params":{"name":"a","names":"b","urn":1}}',
      expected: undefined,
    },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => assertEquals(refusal(input), expected));
  }
});

Deno.test("findDuplicateKey() walks strings, escapes and nesting without being fooled", async (t) => {
  const cases: { description: string; input: string; expected: unknown }[] = [
    { description: "none", input: '{"method":"a","params":{"name":"b"}}', expected: undefined },
    { description: "a key inside a string value", input: '{"x":"\\"method\\":1","method":"a"}', expected: undefined },
    {
      description: "escaped quote before the key",
      input: '{"x":"a\\\\","method":"a","method":"b"}',
      expected: { index: 0, key: "method" },
    },
    {
      description: "braces inside strings",
      input: '{"x":"{[}]","method":"a","y":{"z":"}"},"method":"b"}',
      expected: { index: 0, key: "method" },
    },
    { description: "nested objects skipped", input: '{"x":{"method":1,"method":2},"method":"a"}', expected: undefined },
    { description: "arrays skipped", input: '{"x":[{"method":1},{"method":2}],"method":"a"}', expected: undefined },
    {
      description: "literals and numbers",
      input: '{"a":true,"b":null,"c":-1.5e3,"method":"x","method":"y"}',
      expected: { index: 0, key: "method" },
    },
    {
      description: "batch index",
      input: '[1,"x",{"method":"a"},{"params":{},"params":[]}]',
      expected: { index: 3, key: "params" },
    },
    {
      description: "uri after nested arguments",
      input: '{"params":{"arguments":{"uri":1},"uri":"a","uri":"b"}}',
      expected: { index: 0, key: "uri" },
    },
    { description: "empty objects", input: '[{},{ },{"params":{}}]', expected: undefined },
    { description: "not an object or array", input: '"method"', expected: undefined },
  ];
  for (const { description, input, expected } of cases) {
    await t.step(description, () => {
      JSON.parse(input); // the walker's precondition
      assertEquals(findDuplicateKey(input), expected);
    });
  }
});
