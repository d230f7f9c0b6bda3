--[[
  Gathers bulk items into a new job record, if the gather policy says a job is due. The record
  (state 'submitting') and its items are written before anything is sent to the provider, so a
  worker that dies while submitting leaves a record any worker can resume.

  KEYS[1] bulk       ZSET  key -> version, items waiting for the bulk lane
  KEYS[2] versions   ZSET  key -> latest version
  KEYS[3] jobs       HASH  key -> text
  KEYS[4] pending    ZSET  key -> ready tick (the online lane)
  KEYS[5] bulkitems  ZSET  key -> version, items inside a submitted job
  KEYS[6] bulkjobs   HASH  job id -> JSON record
  KEYS[7] bulkjob    HASH  key -> version of this job's items (bulkjob:<id>)
  KEYS[8] bulkdue    ZSET  job id -> tick (ms) when a worker should look at it next
  KEYS[9] bulkleases HASH  job id -> token of the worker holding it
  KEYS[10] bulkstats HASH  totals; field pausedUntil (ms): no new job before it (429 on submit)

  ARGV[1] job id (ASCII, chosen by the caller)
  ARGV[2] label (ASCII)
  ARGV[3] claim token of the caller (it holds the new job's lease)
  ARGV[4] maxItems   ARGV[5] maxBytes (UTF-8 bytes of text)
  ARGV[6] minItems   ARGV[7] gatherMs   ARGV[8] force ('1': gather whatever waits)
  ARGV[9] submit lease ms: when a 'submitting' record this old is looked at by any worker

  Policy: a job is due when minItems wait, when the oldest waiting item is older than
  gatherMs, or when forced. Entries whose version is no longer the latest (newer text came,
  or the item finished) or whose key waits online are dropped on the way.
  Returns { count, waitMs, waitingLeft, key, version, text, ... }; waitMs -1 when nothing waits.
]]
--@include common

local now = nowUs()
local nowMs = math.floor(now / 1000)
local pausedUntil = num(redis.call('HGET', KEYS[10], 'pausedUntil'))
local waiting = redis.call('ZCARD', KEYS[1])
if waiting == 0 then return { 0, -1, 0 } end
if pausedUntil > nowMs then return { 0, fmt(pausedUntil - nowMs), waiting } end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
local gatherUs = tonumber(ARGV[7]) * 1000.0
if ARGV[8] ~= '1' and waiting < tonumber(ARGV[6]) and now - oldest < gatherUs then
  return { 0, fmt(math.ceil((oldest + gatherUs - now) / 1000)), waiting }
end

local maxItems, maxBytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local taken, stale, out = {}, {}, { 0, 0, 0 }
local bytes = 0
local offset = 0
local full = false
while not full and #taken < maxItems do
  local page = redis.call('ZRANGE', KEYS[1], offset, offset + 999, 'WITHSCORES')
  if #page == 0 then break end
  local keys = {}
  for i = 1, #page, 2 do keys[#keys + 1] = page[i] end
  local cur = redis.call('ZMSCORE', KEYS[2], unpack(keys))
  local online = redis.call('ZMSCORE', KEYS[4], unpack(keys))
  local texts = redis.call('HMGET', KEYS[3], unpack(keys))
  for i = 1, #keys do
    local v = page[2 * i]
    if not present(cur[i]) or tonumber(cur[i]) ~= tonumber(v) or present(online[i]) or not present(texts[i]) then
      stale[#stale + 1] = keys[i]
    elseif #taken > 0 and bytes + #texts[i] > maxBytes then
      full = true
      break
    else
      bytes = bytes + #texts[i]
      taken[#taken + 1] = keys[i]
      out[#out + 1] = keys[i]
      out[#out + 1] = fmt(tonumber(v))
      out[#out + 1] = texts[i]
      if #taken == maxItems then break end
    end
  end
  offset = offset + #keys
end
if #stale > 0 then inSlices(stale, function(...) redis.call('ZREM', KEYS[1], ...) end) end
if #taken == 0 then return { 0, -1, redis.call('ZCARD', KEYS[1]) } end

local hset, zadd = {}, {}
for i = 1, #taken do
  local v = out[3 * i + 2]
  hset[#hset + 1] = taken[i]
  hset[#hset + 1] = v
  zadd[#zadd + 1] = v
  zadd[#zadd + 1] = taken[i]
end
inSlices(taken, function(...) redis.call('ZREM', KEYS[1], ...) end)
inSlices(hset, function(...) redis.call('HSET', KEYS[7], ...) end)
inSlices(zadd, function(...) redis.call('ZADD', KEYS[5], ...) end)
local record = '{"id":"' .. ARGV[1] .. '","label":"' .. ARGV[2] .. '","state":"submitting","count":' ..
  #taken .. ',"bytes":' .. fmt(bytes) .. ',"createdAt":' .. fmt(nowMs) .. ',"polls":0}'
redis.call('HSET', KEYS[6], ARGV[1], record)
redis.call('ZADD', KEYS[8], fmt(nowMs + tonumber(ARGV[9])), ARGV[1])
redis.call('HSET', KEYS[9], ARGV[1], ARGV[3])
out[1] = #taken
out[3] = redis.call('ZCARD', KEYS[1])
-- Not reply(): up to 3 × maxItems values, more than unpack() takes.
return out
