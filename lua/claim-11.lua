--[[
  Claims up to maxBatchSize ready items whose key is not in flight, if the flush policy
  says a batch is due. Deciding the policy here means every process applies the same one.

  KEYS[1] pending   ZSET  key -> ready tick
  KEYS[2] inflight  ZSET  key -> lease expiry tick
  KEYS[3] jobs      HASH  key -> text
  KEYS[4] versions  ZSET  key -> latest version
  KEYS[5] leases    HASH  key -> claim token
  KEYS[6] retries   HASH  key -> failed attempts
  KEYS[7] flush     STRING  items with a tick <= this are due now (flushNow, retries, reclaims)
  KEYS[8] seq       STRING  highest version handed out
  KEYS[9] delayed   ZSET  key -> tick when its backoff ends
  KEYS[10] pause    STRING  no claims before this tick (shared rate-limit pause)
  KEYS[11] paused   STRING  operator pause (`pause()`): no claims while it exists

  ARGV[1] maxBatchSize
  ARGV[2] flushIntervalMs
  ARGV[3] leaseMs
  ARGV[4] claim token

  Returns { count, waitMs, readyLeft, key, version, attempts, text, ... }
  waitMs: -1 when nothing is queued, else how long until the next batch could be due.
  A refused claim of a paused queue returns { 0, waitMs, 0, pausedBy }: pausedBy 'O' for
  the operator pause (waitMs -1: until a resume wakes the workers, or the next poll), 'R'
  for the rate-limit pause (waitMs: until it ends).
  The policy: a batch is due when maxBatchSize items are ready, when the oldest ready
  item is older than flushIntervalMs, or when the oldest is covered by a forced flush.
]]
--@include common

local maxBatch = tonumber(ARGV[1])
local intervalUs = tonumber(ARGV[2]) * 1000.0
local now = nowUs()

if redis.call('EXISTS', KEYS[11]) == 1 then
  return { 0, -1, 0, 'O' }
end

local pauseUntil = num(redis.call('GET', KEYS[10]))
if pauseUntil > now then
  return { 0, fmt(math.ceil((pauseUntil - now) / 1000)), 0, 'R' }
end

-- Backoffs that have ended rejoin pending, due at once: they were flushed before.
local due = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', fmt(now), 'WITHSCORES', 'LIMIT', 0, 1000)
if #due > 0 then
  local add, rem = {}, {}
  local last = 0
  for i = 1, #due, 2 do
    add[#add + 1] = due[i + 1]
    add[#add + 1] = due[i]
    rem[#rem + 1] = due[i]
    last = tonumber(due[i + 1])
  end
  inSlices(add, function(...) redis.call('ZADD', KEYS[1], 'NX', ...) end)
  inSlices(rem, function(...) redis.call('ZREM', KEYS[9], ...) end)
  local f = num(redis.call('GET', KEYS[7]))
  if last > f then redis.call('SET', KEYS[7], fmt(last)) end
end

local cutoff = num(redis.call('GET', KEYS[8]))
if now > cutoff then cutoff = now end
local ready = redis.call('ZCOUNT', KEYS[1], '-inf', fmt(cutoff))
if ready == 0 then
  local nextPending = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local nextDelayed = redis.call('ZRANGE', KEYS[9], 0, 0, 'WITHSCORES')
  local at = nil
  if nextPending[2] then at = tonumber(nextPending[2]) + intervalUs end
  if nextDelayed[2] and (at == nil or tonumber(nextDelayed[2]) < at) then at = tonumber(nextDelayed[2]) end
  if at == nil then return { 0, -1, 0 } end
  return { 0, fmt(math.max(0, math.ceil((at - now) / 1000))), 0 }
end

local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
local flushUntil = num(redis.call('GET', KEYS[7]))
if ready < maxBatch and (now - oldest) < intervalUs and oldest > flushUntil then
  return { 0, fmt(math.ceil((oldest + intervalUs - now) / 1000)), ready }
end

-- Take ready keys in tick order, skipping keys already in flight (their newer text waits).
local taken = {}
local offset = 0
while #taken < maxBatch do
  local page = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(cutoff), 'LIMIT', offset, maxBatch)
  if #page == 0 then break end
  local busy = redis.call('ZMSCORE', KEYS[2], unpack(page))
  for i = 1, #page do
    if not present(busy[i]) then
      taken[#taken + 1] = page[i]
      if #taken == maxBatch then break end
    end
  end
  offset = offset + #page
end
if #taken == 0 then
  return { 0, 50, ready }
end

local texts = redis.call('HMGET', KEYS[3], unpack(taken))
local versions = redis.call('ZMSCORE', KEYS[4], unpack(taken))
local attempts = redis.call('HMGET', KEYS[6], unpack(taken))
redis.call('ZREM', KEYS[1], unpack(taken))

local expiry = fmt(now + tonumber(ARGV[3]) * 1000.0)
local leaseAdd, tokenSet = {}, {}
local out = { 0, 0, 0 }
local count = 0
for i = 1, #taken do
  -- An entry without text or version is debris from a crash between scripts: drop it.
  if present(texts[i]) and present(versions[i]) then
    leaseAdd[#leaseAdd + 1] = expiry
    leaseAdd[#leaseAdd + 1] = taken[i]
    tokenSet[#tokenSet + 1] = taken[i]
    tokenSet[#tokenSet + 1] = ARGV[4]
    out[#out + 1] = taken[i]
    out[#out + 1] = fmt(tonumber(versions[i]))
    out[#out + 1] = num(attempts[i])
    out[#out + 1] = texts[i]
    count = count + 1
  end
end
if count > 0 then
  redis.call('ZADD', KEYS[2], unpack(leaseAdd))
  redis.call('HSET', KEYS[5], unpack(tokenSet))
end
out[1] = count
out[3] = ready - count
return reply(out)
