-- wrk script: POSTs request bodies read from a template file, each with a UNIQUE id substituted.
--
-- Usage: wrk ... -s bench/wrk_post.lua URL -- TEMPLATES AUTHORIZATION NONCE
--   TEMPLATES      file with one JSON body per line; every "@@ID@@" in a body is replaced per request; a line
--                  "PATH<TAB>BODY" posts that body to PATH instead of the URL's path (mixed endpoints)
--   AUTHORIZATION  value of the Authorization header ("-" for none)
--   NONCE          text that makes this run's ids differ from every other run's
-- Each request's id is NONCE-THREAD-COUNTER, so messageIds (TEMPLATE's "@@ID@@-<n>") never repeat.
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (microseconds).

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
   table.insert(threads, thread)
end

local templates = {}
local headers = {}
local base = ""
local counter = 0

local function split(text, sep)
   local parts, start = {}, 1
   while true do
      local i, j = string.find(text, sep, start, true)
      if not i then
         table.insert(parts, string.sub(text, start))
         return parts
      end
      table.insert(parts, string.sub(text, start, i - 1))
      start = j + 1
   end
end

function init(args)
   local path, auth, nonce = args[1], args[2], args[3]
   for line in io.lines(path) do
      if #line > 0 then
         local target, body = nil, line
         local tab = string.find(line, "\t", 1, true)
         if tab then
            target, body = string.sub(line, 1, tab - 1), string.sub(line, tab + 1)
         end
         local parts = split(body, "@@ID@@")
         if #parts < 2 then
            error("template has no @@ID@@ placeholder: " .. string.sub(line, 1, 80))
         end
         table.insert(templates, {target, parts})
      end
   end
   if #templates == 0 then
      error("no templates in " .. path)
   end
   headers["Content-Type"] = "application/json"
   if auth and auth ~= "-" then
      headers["Authorization"] = auth
   end
   base = (nonce or "r") .. "-" .. tostring(tid) .. "-"
end

function request()
   counter = counter + 1
   local t = templates[(counter % #templates) + 1]
   -- table.concat with a separator puts the unique id between the pieces, i.e. at every placeholder
   return wrk.format("POST", t[1], headers, table.concat(t[2], base .. counter))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, '
      .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "latency_mean_us": %.1f, '
      .. '"latency_p50_us": %d, "latency_p90_us": %d, "latency_p99_us": %d, "latency_max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
