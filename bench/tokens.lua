-- wrk script for bench/bench.ts: POST /mcp with a JSON-RPC body and a Bearer token taken
-- in turn from the file named by BENCH_TOKENS (one token a line). Requests are formatted
-- once at start-up, so the per-request cost in wrk is the same whatever the token.
--
-- With several wrk threads, thread k takes tokens k, k+n, k+2n, ...: no token is sent by
-- two threads, so a pool used once per run ("cold") stays cold. done() prints one line,
--   BENCH pool=<tokens> sent=<requests> wrapped=<0|1> non2xx=<n> status401=<n>
-- wrapped=1 means a thread used its share of the pool up and began again (a cold run
-- that wraps is no longer cold; bench.ts flags it).

local path = os.getenv("BENCH_PATH") or "/mcp"
local file = os.getenv("BENCH_TOKENS")
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'

local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local n = 0
local i = 0
wrapped = 0
sent = 0
status401 = 0
statusother = 0

function init(args)
  local count = counter > 0 and counter or 1
  local index = tonumber(wrk.thread:get("index")) or 0
  local k = 0
  for line in io.lines(file) do
    if line ~= "" then
      if k % count == index then
        n = n + 1
        requests[n] = wrk.format("POST", path, {
          ["Host"] = "mcp.example.test",
          ["Content-Type"] = "application/json",
          ["Accept"] = "application/json, text/event-stream",
          ["MCP-Protocol-Version"] = "2025-06-18",
          ["User-Agent"] = "wrk (mcp-gate bench)",
          ["Authorization"] = "Bearer " .. line,
        }, body)
      end
      k = k + 1
    end
  end
  pool = n
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = 1
  end
  sent = sent + 1
  return requests[i]
end

-- Counting statuses makes wrk hand every response to Lua, which costs it throughput:
-- only when asked (bench.ts does it in a short check before each measured run).
if os.getenv("BENCH_STATUS") == "1" then
  function response(status, headers, body)
    if status == 401 then
      status401 = status401 + 1
    elseif status ~= 200 then
      statusother = statusother + 1
    end
  end
end

function done(summary, latency, reqs)
  local pool, total, wrap, s401, other = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    pool = pool + (tonumber(t:get("pool")) or 0)
    total = total + (tonumber(t:get("sent")) or 0)
    if tonumber(t:get("wrapped")) == 1 then wrap = 1 end
    s401 = s401 + (tonumber(t:get("status401")) or 0)
    other = other + (tonumber(t:get("statusother")) or 0)
  end
  io.write(string.format("BENCH pool=%d sent=%d wrapped=%d status401=%d statusother=%d\n",
    pool, total, wrap, s401, other))
end
