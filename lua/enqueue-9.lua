--[[
  Adds or replaces items, one call per chunk.

  KEYS[1] pending   ZSET  key -> ready tick (its version: microseconds, unique, FIFO)
  KEYS[2] jobs      HASH  key -> text
  KEYS[3] versions  ZSET  key -> latest version (every live item)
  KEYS[4] seq       STRING  highest version handed out
  KEYS[5] retries   HASH  key -> failed attempts
  KEYS[6] failed    HASH  key -> dead letter (JSON)
  KEYS[7] delayed   ZSET  key -> tick when a backoff ends
  KEYS[8] bulk      ZSET  key -> version, items waiting for the bulk lane
  KEYS[9] bulkitems ZSET  key -> version, items inside a submitted bulk job

  ARGV[1] maxBatchSize (a wake-up is published each time the ready count crosses a multiple,
          and when the queue had nothing ready before)
  ARGV[2] wake channel
  ARGV[3] maxPending (0: no limit)
  ARGV[4..] key, text, key, text, ...

  Returns { readyCount, version1, version2, ... } (versions as decimal strings), or
  { -1, unfinished } without writing anything when the chunk would take the number of
  unfinished items over maxPending (backpressure).
  A re-enqueued key keeps one entry: the new text replaces the old, it keeps its place
  in the FIFO (or takes the earlier one), and a backoff or a dead letter is cleared.
  An online enqueue takes the key out of the bulk lane (waiting or in a job): the online
  text is the latest, and a late bulk result for the older version acks as superseded.
]]
--@include common
--@include enqueue-items

local maxBatch = tonumber(ARGV[1])
local n = (#ARGV - 3) / 2
local base, unfinished = assignVersions(KEYS[3], KEYS[4], tonumber(ARGV[3]), n)
if not base then return { -1, unfinished } end
local keys, hset, vadd, out = chunkItems(4, n, base)

local before = redis.call('ZCOUNT', KEYS[1], '-inf', fmt(base))
-- pending keeps the earliest tick of a key (ZADD NX for new keys, existing keep theirs)
local padd = {}
for i = 1, n do
  padd[#padd + 1] = vadd[2 * i - 1]
  padd[#padd + 1] = keys[i]
end
inSlices(padd, function(...) redis.call('ZADD', KEYS[1], 'NX', ...) end)
inSlices(hset, function(...) redis.call('HSET', KEYS[2], ...) end)
inSlices(vadd, function(...) redis.call('ZADD', KEYS[3], ...) end)
inSlices(keys, function(...) redis.call('HDEL', KEYS[5], ...) end)
inSlices(keys, function(...) redis.call('HDEL', KEYS[6], ...) end)
inSlices(keys, function(...) redis.call('ZREM', KEYS[7], ...) end)
inSlices(keys, function(...) redis.call('ZREM', KEYS[8], ...) end)
inSlices(keys, function(...) redis.call('ZREM', KEYS[9], ...) end)

local ready = redis.call('ZCOUNT', KEYS[1], '-inf', fmt(base + n))
out[1] = ready
-- Wake idle workers when a full batch forms, and when the queue stops being empty (so a
-- worker sleeping until its next poll learns when this item's flush interval ends).
if math.floor(ready / maxBatch) > math.floor(before / maxBatch) or before == 0 then
  redis.call('PUBLISH', ARGV[2], 'batch')
end
return reply(out)
