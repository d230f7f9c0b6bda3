--[[
  Takes items of a finished bulk job out of the in-job set before they are settled, so
  flushAndWait counts them (as online work) while their vectors are written and acknowledged.

  KEYS[1] bulkitems ZSET key -> version, items inside a submitted job

  ARGV[1..] key, version, key, version, ...

  Only the entry of that version goes (a newer bulk copy of the key is another job's).
  Returns the number removed.
]]
--@include common

local n = #ARGV / 2
local removed = 0
for i = 1, n do
  local key, ver = ARGV[2 * i - 1], ARGV[2 * i]
  local cur = redis.call('ZSCORE', KEYS[1], key)
  if present(cur) and tonumber(cur) == tonumber(ver) then
    redis.call('ZREM', KEYS[1], key)
    removed = removed + 1
  end
end
return removed
