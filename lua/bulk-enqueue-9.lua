--[[
  Adds or replaces items in the bulk lane, one call per chunk (the bulk twin of enqueue).

  KEYS[1] bulk      ZSET  key -> version, items waiting for the bulk lane
  KEYS[2] jobs      HASH  key -> text
  KEYS[3] versions  ZSET  key -> latest version (every live item)
  KEYS[4] seq       STRING  highest version handed out
  KEYS[5] retries   HASH  key -> failed attempts
  KEYS[6] failed    HASH  key -> dead letter (JSON)
  KEYS[7] delayed   ZSET  key -> tick when a backoff ends
  KEYS[8] pending   ZSET  key -> ready tick (the online lane)
  KEYS[9] bulkitems ZSET  key -> version, items inside a submitted bulk job

  ARGV[1] maxPending (0: no limit)
  ARGV[2..] key, text, key, text, ...

  Returns { bulkWaiting, version1, version2, ... }, or { -1, unfinished } without writing
  anything when the chunk would take the unfinished items over maxPending.
  The new text replaces the old and clears a backoff or a dead letter, as online. A key
  already waiting online stays online (with the new text): a bulk enqueue never delays an
  item someone asked for sooner. A copy of the key inside a submitted job is superseded (its
  late result acks as 'S').
]]
--@include common
--@include enqueue-items

local n = (#ARGV - 1) / 2
local base, unfinished = assignVersions(KEYS[3], KEYS[4], tonumber(ARGV[1]), n)
if not base then return { -1, unfinished } end
local keys, hset, vadd, out = chunkItems(2, n, base)
local badd = {}
local inPending = {}
for s = 1, n, 1000 do
  local slice = {}
  for i = s, math.min(n, s + 999) do slice[#slice + 1] = keys[i] end
  local scores = redis.call('ZMSCORE', KEYS[8], unpack(slice))
  for j = 1, #slice do inPending[s + j - 1] = present(scores[j]) end
end
for i = 1, n do
  if not inPending[i] then
    badd[#badd + 1] = vadd[2 * i - 1]
    badd[#badd + 1] = keys[i]
  end
end
inSlices(hset, function(...) redis.call('HSET', KEYS[2], ...) end)
inSlices(vadd, function(...) redis.call('ZADD', KEYS[3], ...) end)
inSlices(badd, function(...) redis.call('ZADD', KEYS[1], ...) end)
inSlices(keys, function(...) redis.call('HDEL', KEYS[5], ...) end)
inSlices(keys, function(...) redis.call('HDEL', KEYS[6], ...) end)
inSlices(keys, function(...) redis.call('ZREM', KEYS[7], ...) end)
inSlices(keys, function(...) redis.call('ZREM', KEYS[9], ...) end)
out[1] = redis.call('ZCARD', KEYS[1])
return reply(out)
