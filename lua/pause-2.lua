--[[
  A provider call was rate-limited: pauses claims in every worker of the queue and records
  why, for stats() and `embedq status` in any process.

  KEYS[1] pause      STRING  no claims before this tick (expires with the pause)
  KEYS[2] pauseinfo  HASH    until (tick), reason ('rate-limit' | 'quota'), since (tick the
                             pause began), quotaId, message, calls (rate-limited calls ever),
                             streak (rate-limited calls with no success in between), at (tick
                             of the last rate-limited call)

  ARGV[1] the server's wait in ms, or -1 when it gave none
  ARGV[2] default pause in ms (without a server wait), doubled for each call of the streak
  ARGV[3] longest default pause in ms
  ARGV[4] reason: 'rate-limit' or 'quota'
  ARGV[5] quotaId ('' when unknown)
  ARGV[6] message (the provider's error, already clipped)
  ARGV[7] ms after the last rate-limited call when a streak is forgotten

  A rate-limited call while a pause is in effect comes from a call that started before the
  pause: it does not lengthen the streak. The pause is extended, never shortened; the reason
  is that of whichever call asked for the longest pause.
  Returns { until tick, ms left, extended (1/0), quotaStarted (1 when this call turned the
  queue's pause into a quota pause) }.
]]
--@include common

local now = nowUs()
local info = redis.call('HMGET', KEYS[2], 'until', 'streak', 'reason', 'at')
local cur = num(redis.call('GET', KEYS[1]))
local active = cur > now
local streak = num(info[2])
if now - num(info[4]) > tonumber(ARGV[7]) * 1000.0 then streak = 0 end
if not active or streak == 0 then streak = streak + 1 end

local ms = tonumber(ARGV[1])
if ms < 0 then ms = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (streak - 1)) end
local untilTick = now + ms * 1000.0
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('HSET', KEYS[2], 'streak', streak, 'at', fmt(now))

local curReason = ''
if active and present(info[3]) then curReason = info[3] end
if cur >= untilTick then
  return { fmt(cur), fmt(math.ceil((cur - now) / 1000)), 0, 0 }
end
redis.call('SET', KEYS[1], fmt(untilTick), 'PX', math.max(1, math.ceil(ms)))
local since = fmt(now)
local began = redis.call('HGET', KEYS[2], 'since')
if active and present(began) then since = began end
redis.call('HSET', KEYS[2], 'until', fmt(untilTick), 'reason', ARGV[4], 'since', since,
  'quotaId', ARGV[5], 'message', ARGV[6])
local quotaStarted = 0
if ARGV[4] == 'quota' and curReason ~= 'quota' then quotaStarted = 1 end
return { fmt(untilTick), fmt(math.ceil(ms)), 1, quotaStarted }
