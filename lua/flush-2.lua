--[[
  Forces a flush of everything queued so far, in every worker process.

  KEYS[1] flush  STRING  items with a tick <= this are due now
  KEYS[2] seq    STRING  highest version handed out

  ARGV[1] wake channel

  Returns the watermark: the highest version handed out, or now if that is later (a version
  is never above either, so the watermark covers every item queued before this call even
  when `seq` was lost, e.g. evicted).
]]
--@include common

local now = nowUs()
local seq = num(redis.call('GET', KEYS[2]))
local mark = now
if seq > mark then mark = seq end
local f = num(redis.call('GET', KEYS[1]))
if mark > f then redis.call('SET', KEYS[1], fmt(mark)) end
redis.call('PUBLISH', ARGV[1], 'flush')
return fmt(mark)
