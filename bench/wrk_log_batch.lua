-- wrk script: POST /api/2.0/mlflow/runs/log-batch with a distinct body per
-- request (unique steps, runs taken round robin), so no two requests are
-- the same write.  Used by bench/tracking_bench.py (workload `load`).
--
-- Environment:
--   WRK_RUN_IDS  comma-separated run ids to log into (required)
--   WRK_BATCH    metric values per request (default 100)
--   WRK_KEYS     distinct metric keys per request (default 10; must divide WRK_BATCH)
--
-- done() prints one line "WRKJSON {...}" with the counts and latency
-- percentiles (microseconds) for the driver to parse.

local run_ids = {}
for id in string.gmatch(os.getenv("WRK_RUN_IDS") or "", "[^,]+") do
  run_ids[#run_ids + 1] = id
end
local batch = tonumber(os.getenv("WRK_BATCH") or "100")
local nkeys = tonumber(os.getenv("WRK_KEYS") or "10")
local steps = math.floor(batch / nkeys)

local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  tid = tid or 0
  counter = 0
  if #run_ids == 0 then
    error("WRK_RUN_IDS is empty")
  end
  wrk.method = "POST"
  wrk.path = "/api/2.0/mlflow/runs/log-batch"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  -- unique per (thread, request) for up to 64 wrk threads
  local n = counter * 64 + tid
  local run = run_ids[(n % #run_ids) + 1]
  local parts = {}
  local ts = 1700000000000 + n
  for s = 0, steps - 1 do
    local step = n * steps + s
    for k = 0, nkeys - 1 do
      parts[#parts + 1] = string.format(
        '{"key":"m%d","value":%.6f,"timestamp":%d,"step":%d}',
        k, ((step * 7 + k) % 1000) / 1000.0, ts, step)
    end
  end
  local body = '{"run_id":"' .. run .. '","metrics":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,' ..
    '"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
