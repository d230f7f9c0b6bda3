--[[
  Shared rate limit of provider calls: a sliding-window log, exact over any window.
  Admits a call only if, counting it, the calls and tokens admitted in the last windowMs
  stay within the limits; otherwise says how long to wait. Because every admission checks
  the full window behind it, no window of that length ever holds more than the limits.

  KEYS[1] log    ZSET  member <tick>:<id>:<tokens> -> tick of an admitted call
  KEYS[2] total  STRING tokens of the calls in the log

  ARGV[1] windowMs
  ARGV[2] requests per window (0: no limit)
  ARGV[3] tokens per window (0: no limit)
  ARGV[4] tokens of this call
  ARGV[5] unique id of this call

  Returns 0 when admitted, else the ms to wait before asking again.
]]
--@include common

local now = nowUs()
local windowUs = tonumber(ARGV[1]) * 1000.0
local maxReq = tonumber(ARGV[2])
local maxTok = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local horizon = fmt(now - windowUs)

local function tokensOf(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
if #expired > 0 then
  local gone = 0
  for i = 1, #expired do gone = gone + tokensOf(expired[i]) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
  redis.call('DECRBY', KEYS[2], fmt(gone))
end

local count = redis.call('ZCARD', KEYS[1])
local used = num(redis.call('GET', KEYS[2]))
-- A single call larger than the whole token budget is admitted only into an empty window.
local function fits(c, u)
  local reqOk = maxReq <= 0 or c + 1 <= maxReq
  local tokOk = maxTok <= 0 or u + tokens <= maxTok or u == 0
  return reqOk and tokOk
end

if fits(count, used) then
  redis.call('ZADD', KEYS[1], fmt(now), fmt(now) .. ':' .. ARGV[5] .. ':' .. fmt(tokens))
  redis.call('INCRBY', KEYS[2], fmt(tokens))
  local ttl = math.ceil(tonumber(ARGV[1]) * 2)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return 0
end

-- Wait until enough of the oldest calls leave the window.
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local c, u = count, used
for i = 1, #entries, 2 do
  c = c - 1
  u = u - tokensOf(entries[i])
  if fits(c, u) then
    return math.max(1, math.ceil((tonumber(entries[i + 1]) + windowUs - now) / 1000))
  end
end
return math.ceil(windowUs / 1000)
