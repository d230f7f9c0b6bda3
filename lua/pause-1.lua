--[[
  Pauses claims in every worker of the queue (the provider asked us to slow down).

  KEYS[1] pause  STRING  no claims before this tick

  ARGV[1] pause length in ms

  Extends, never shortens, a pause. Returns the pause end tick.
]]
--@include common

local untilTick = nowUs() + tonumber(ARGV[1]) * 1000.0
local cur = num(redis.call('GET', KEYS[1]))
if cur > untilTick then return fmt(cur) end
redis.call('SET', KEYS[1], fmt(untilTick), 'PX', math.ceil(tonumber(ARGV[1])) + 1000)
return fmt(untilTick)
