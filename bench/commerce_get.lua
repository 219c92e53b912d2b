-- wrk script: GETs the paths listed in a file, round robin, with an Authorization header.
-- Usage: wrk ... -s bench/commerce_get.lua URL -- PATHS AUTHORIZATION
-- done() prints one line "BENCH_JSON {...}" like wrk_post.lua.

local paths = {}
local headers = {}
local counter = 0

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then
         table.insert(paths, line)
      end
   end
   headers["Authorization"] = args[2]
   counter = math.random(1, #paths)
end

function request()
   counter = counter + 1
   return wrk.format("GET", paths[(counter % #paths) + 1], headers, nil)
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
