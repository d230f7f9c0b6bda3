--[[
  Settles items whose embedding failed: retry later, give up, or release uncharged.

  KEYS[1] inflight  ZSET  key -> lease expiry tick
  KEYS[2] leases    HASH  key -> claim token
  KEYS[3] jobs      HASH  key -> text
  KEYS[4] versions  ZSET  key -> latest version
  KEYS[5] retries   HASH  key -> failed attempts
  KEYS[6] delayed   ZSET  key -> tick when its backoff ends
  KEYS[7] failed    HASH  key -> dead letter (JSON)
  KEYS[8] pending   ZSET  key -> ready tick
  KEYS[9] flush     STRING  forced-flush tick
  KEYS[10] done log STREAM  capped log of done entries (see includes/done-log.lua)

  ARGV[1] claim token
  ARGV[2] done channel
  ARGV[3..] groups of 5: key, version, mode, delayMs, deadLetterJson
    mode 'R' retry: charge one attempt, back off delayMs
    mode 'G' give up: charge one attempt, record the dead letter (the caller has already
             written the zero vector), publish the failure
    mode 'N' release: no charge, pending again at once (credential errors, shutdown)
  ARGV[last] done log length cap, in entries (0: no log)

  Nothing is charged when the lease is another worker's, or when newer text replaced the
  version that failed (the newer text is already pending). Returns the attempts per key
  (-1 when skipped).
]]
--@include common
--@include done-log

local token = ARGV[1]
local now = nowUs()
local n = (#ARGV - 3) / 5
local out, msg = {}, {}
local logged = {} -- msg without the dead letters, for the done log
local released = {}
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local key, ver, mode, delayMs, letter = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local holder = redis.call('HGET', KEYS[2], key)
  if not present(holder) then holder = nil end
  out[i] = -1
  if not (holder and holder ~= token) then
    if holder then released[#released + 1] = key end
    local cur = redis.call('ZSCORE', KEYS[4], key)
    if present(cur) and tonumber(cur) == tonumber(ver) then
      if mode == 'N' then
        redis.call('ZADD', KEYS[8], 'NX', ver, key)
        out[i] = 0
      else
        local attempts = redis.call('HINCRBY', KEYS[5], key, 1)
        out[i] = attempts
        if mode == 'G' then
          redis.call('HSET', KEYS[7], key, letter)
          redis.call('HDEL', KEYS[3], key)
          redis.call('ZREM', KEYS[4], key)
          redis.call('HDEL', KEYS[5], key)
          redis.call('ZREM', KEYS[8], key)
          msg[#msg + 1] = entry('F', ver, key, letter)
          logged[#logged + 1] = entry('F', ver, key)
        else
          redis.call('ZREM', KEYS[8], key)
          redis.call('ZADD', KEYS[6], fmt(now + tonumber(delayMs) * 1000.0), key)
        end
      end
    end
  end
end
if #released > 0 then
  redis.call('ZREM', KEYS[1], unpack(released))
  redis.call('HDEL', KEYS[2], unpack(released))
end
-- Released items go straight back into a batch: they were flushed once already.
local f = num(redis.call('GET', KEYS[9]))
if now > f then redis.call('SET', KEYS[9], fmt(now)) end
if #msg > 0 then
  redis.call('PUBLISH', ARGV[2], appendDoneLog(KEYS[10], ARGV[#ARGV], table.concat(logged)) .. table.concat(msg))
end
return reply(out)
