-- wrk script: POST pre-built bodies in turn and check every answer against its label.
--   wrk -t C -c C -d 12s -s load.lua URL -- MANIFEST [FIELD]
-- MANIFEST has one line per body: label, content type, the body file's path and an optional extra header ("Name: value",
-- the binary-data extension's Inference-Header-Content-Length), separated by tabs (bench/peers/bodies.py). FIELD is
-- the response's JSON field that must equal the label (default "digit"; a number or a string), or the Open Inference
-- Protocol's output of that name (its first element). Run with as many threads as
-- connections (-t = -c): a thread's responses then come back in the order of its requests, so each answer is
-- checked against the label of the request it answers. done() prints one JSON line for bench/peers/run.py.
-- A GET path (no manifest) only counts non-2xx answers (wrk's status errors). A read error loses an answer and
-- shifts the checks after it on that thread: runs with read errors count many wrong answers (never fewer).

local threads = {}
local bodies = {}
local queue, first, last = {}, 1, 0
checked, mismatched = 0, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("first_thread", #threads == 1)
end

function init(args)
  if args[1] == nil then return end
  local field = args[2] or "digit"
  answer = '"' .. field .. '"%s*:%s*"?([^",}]*)'
  output = '"name"%s*:%s*"' .. field .. '".-"data"%s*:%s*[%[%s]*"?([^",%]]*)'
  for line in io.lines(args[1]) do
    local label, ctype, path, extra = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t?(.*)$")
    local f = assert(io.open(path, "rb"))
    local body = f:read("*a")
    f:close()
    local headers = {["Content-Type"] = ctype, ["Content-Length"] = tostring(#body)}
    local name, value = extra:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
    table.insert(bodies, {label = label, request = wrk.format("POST", nil, headers, body)})
  end
  next_body = math.random(#bodies)  -- threads start at different digits
end

function request()
  if #bodies == 0 then return wrk.format("GET") end
  next_body = next_body % #bodies + 1
  if first_thread and not primed then  -- wrk 4.1 calls the first thread's request() once to check it, unsent
    primed = true
    return bodies[next_body].request
  end
  last = last + 1
  queue[last] = bodies[next_body].label
  return bodies[next_body].request
end

function response(status, headers, body)
  if #bodies == 0 then return end
  local label = queue[first]
  queue[first] = nil
  first = first + 1
  checked = checked + 1
  if status ~= 200 or (body:match(answer) or body:match(output)) ~= label then
    mismatched = mismatched + 1
  end
end

function done(summary, latency, requests)
  local c, m = 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("checked")
    m = m + thread:get("mismatched")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "checked": %d, "wrong": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.connect, e.read, e.write, e.status, e.timeout, c, m))
end
