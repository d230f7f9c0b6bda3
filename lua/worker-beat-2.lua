--[[
  Writes (or removes) one worker's entry in the registry, on Redis's clock.

  KEYS[1] workers       HASH  worker id -> WorkerInfo (JSON)
  KEYS[2] workers-seen  ZSET  worker id -> epoch ms after which the worker counts as gone

  ARGV[1] worker id
  ARGV[2] WorkerInfo JSON without lastSeenAt (the script adds it); '' removes the worker
  ARGV[3] ttlMs: the worker counts as gone this long after this beat

  Returns the Redis time of the beat, epoch ms.
]]
--@include common

local nowMs = math.floor(nowUs() / 1000)
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return nowMs
end
local info = string.sub(ARGV[2], 1, -2) .. ',"lastSeenAt":' .. fmt(nowMs) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], info)
redis.call('ZADD', KEYS[2], fmt(nowMs + tonumber(ARGV[3])), ARGV[1])
return nowMs
