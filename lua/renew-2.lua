--[[
  Heartbeat: extends the leases of a running claim that are still ours.

  KEYS[1] inflight  ZSET  key -> lease expiry tick
  KEYS[2] leases    HASH  key -> claim token

  ARGV[1] claim token
  ARGV[2] leaseMs
  ARGV[3..] keys

  Returns the keys whose lease was lost (expired and taken by another worker, or reclaimed).
]]
--@include common

local keys = {}
for i = 3, #ARGV do keys[#keys + 1] = ARGV[i] end
local holders = redis.call('HMGET', KEYS[2], unpack(keys))
local expiry = fmt(nowUs() + tonumber(ARGV[2]) * 1000.0)
local add, lost = {}, {}
for i = 1, #keys do
  if holders[i] == ARGV[1] then
    add[#add + 1] = expiry
    add[#add + 1] = keys[i]
  else
    lost[#lost + 1] = keys[i]
  end
end
if #add > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(add)) end
return reply(lost)
