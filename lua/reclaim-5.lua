--[[
  Returns expired leases to pending (a worker died or stalled past its lease).

  KEYS[1] inflight  ZSET  key -> lease expiry tick
  KEYS[2] leases    HASH  key -> claim token
  KEYS[3] pending   ZSET  key -> ready tick
  KEYS[4] versions  ZSET  key -> latest version
  KEYS[5] flush     STRING  forced-flush tick

  ARGV[1] most items to reclaim in this call
  ARGV[2] wake channel

  Reclaimed items keep their FIFO place (score = version) and are due at once.
  Returns the number reclaimed.
]]
--@include common

local now = nowUs()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'LIMIT', 0, tonumber(ARGV[1]))
if #expired == 0 then return 0 end
local versions = redis.call('ZMSCORE', KEYS[4], unpack(expired))
local add = {}
for i = 1, #expired do
  if present(versions[i]) then
    add[#add + 1] = fmt(tonumber(versions[i]))
    add[#add + 1] = expired[i]
  end
end
redis.call('ZREM', KEYS[1], unpack(expired))
redis.call('HDEL', KEYS[2], unpack(expired))
if #add > 0 then
  redis.call('ZADD', KEYS[3], 'NX', unpack(add))
  local f = num(redis.call('GET', KEYS[5]))
  if now > f then redis.call('SET', KEYS[5], fmt(now)) end
  redis.call('PUBLISH', ARGV[2], 'reclaim')
end
return #expired
