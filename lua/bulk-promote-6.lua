--[[
  Moves bulk items to the online lane now.

  KEYS[1] bulk       ZSET  key -> version, items waiting for the bulk lane
  KEYS[2] bulkitems  ZSET  key -> version, items inside a submitted job
  KEYS[3] versions   ZSET  key -> latest version
  KEYS[4] pending    ZSET  key -> ready tick (the online lane)
  KEYS[5] seq        STRING highest version handed out
  KEYS[6] flush      STRING items with a tick up to this are due now

  ARGV[1] wake channel
  ARGV[2..] keys

  A waiting item moves to pending with its version. An item inside a submitted job is
  enqueued online again with its current text under a new version: the online result wins,
  and the job's late result for the older version acks as superseded. Both are due at once.
  Returns the number of items promoted.
]]
--@include common

local now = nowUs()
local base = num(redis.call('GET', KEYS[5]))
if base < now then base = now end
local next = base
local promoted, due = 0, 0
for i = 2, #ARGV do
  local key = ARGV[i]
  local cur = redis.call('ZSCORE', KEYS[3], key)
  local waiting = redis.call('ZSCORE', KEYS[1], key)
  local inJob = redis.call('ZSCORE', KEYS[2], key)
  if present(waiting) then redis.call('ZREM', KEYS[1], key) end
  if present(inJob) then redis.call('ZREM', KEYS[2], key) end
  if present(cur) and not present(redis.call('ZSCORE', KEYS[4], key)) then
    local v = tonumber(cur)
    if present(inJob) and tonumber(inJob) == v then
      next = next + 1
      v = next
      redis.call('ZADD', KEYS[3], fmt(v), key)
    end
    if present(waiting) or present(inJob) then
      redis.call('ZADD', KEYS[4], 'NX', fmt(v), key)
      if v > due then due = v end
      promoted = promoted + 1
    end
  end
end
if next > base then redis.call('SET', KEYS[5], fmt(next)) end
if promoted > 0 then
  if due > num(redis.call('GET', KEYS[6])) then redis.call('SET', KEYS[6], fmt(due)) end
  redis.call('PUBLISH', ARGV[1], 'flush')
end
return promoted
