--[[
  Adds per-minute counters to the history and drops minutes older than the kept window.

  KEYS[1] history  HASH  minute (epoch minutes) -> CSV of counters (see src/history.ts);
                         field 'p' = first minute not yet pruned

  ARGV[1] minutes kept (1440: 24 h)
  ARGV[2] counters per minute (the CSV's length)
  ARGV[3..] minute, CSV of deltas, minute, CSV of deltas, ...

  A minute outside (now - kept, now + 1] on Redis's clock is ignored (a worker's clock far off):
  so the hash never holds more than kept + 2 minute fields and 'p'.
  Pruning deletes the minutes that aged out since the last call, at most `kept` per call.
  Returns the number of minutes written.
]]
--@include common

local kept = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local now = math.floor(nowUs() / 60000000)

local from = num(redis.call('HGET', KEYS[1], 'p'))
if from < now - 2 * kept then from = now - 2 * kept end
local old = {}
for m = from, now - kept do old[#old + 1] = fmt(m) end
if #old > 0 then inSlices(old, function(...) redis.call('HDEL', KEYS[1], ...) end) end
if now - kept + 1 > from then redis.call('HSET', KEYS[1], 'p', fmt(now - kept + 1)) end

local written = 0
for i = 3, #ARGV, 2 do
  local minute = tonumber(ARGV[i])
  if minute and minute > now - kept and minute <= now + 1 then
    local cur = redis.call('HGET', KEYS[1], ARGV[i])
    local sums = {}
    if present(cur) then
      for v in string.gmatch(cur, '[^,]+') do sums[#sums + 1] = tonumber(v) end
    end
    local j = 0
    for v in string.gmatch(ARGV[i + 1], '[^,]+') do
      j = j + 1
      sums[j] = (sums[j] or 0) + tonumber(v)
    end
    for k = 1, width do
      sums[k] = fmt(sums[k] or 0)
    end
    redis.call('HSET', KEYS[1], ARGV[i], table.concat(sums, ',', 1, width))
    written = written + 1
  end
end
return written
