--[[
  Puts items of a finished bulk job back in the bulk lane (or, after too many misses, online).

  KEYS[1] bulk       ZSET  key -> version, items waiting for the bulk lane
  KEYS[2] versions   ZSET  key -> latest version
  KEYS[3] retries    HASH  key -> failed attempts
  KEYS[4] bulkmisses HASH  key -> times missing from a succeeded job's results
  KEYS[5] pending    ZSET  key -> ready tick (the online lane)
  KEYS[6] bulkitems  ZSET  key -> version, items inside a submitted job
  KEYS[7] flush      STRING items with a tick up to this are due now (an item moved online is)

  ARGV[1] maxAttempts  ARGV[2] most misses before the item goes online
  ARGV[3..] groups of 3: key, version, mode
    'U' uncharged (expired job, never processed, 429 on submit, lost submission)
    'C' charged one attempt (failed or cancelled job, a retryable per-item error)
    'M' missing from a succeeded job's results: uncharged, counted in bulkmisses; past the
        bound the item moves to the online lane (due at once)

  Returns per item: 'Q' back in the bulk lane, 'O' moved online, 'G' its attempts are used up
  (nothing written: the caller gives it up through the fail script, which charges it), 'S'
  skipped (newer text replaced this version, the key waits online, or it finished).
]]
--@include common

local maxAttempts, maxMisses = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = (#ARGV - 2) / 3
local out = {}
for i = 1, n do
  local b = 2 + (i - 1) * 3
  local key, ver, mode = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local inJob = redis.call('ZSCORE', KEYS[6], key)
  if present(inJob) and tonumber(inJob) == tonumber(ver) then redis.call('ZREM', KEYS[6], key) end
  local cur = redis.call('ZSCORE', KEYS[2], key)
  if not present(cur) or tonumber(cur) ~= tonumber(ver) or present(redis.call('ZSCORE', KEYS[5], key)) then
    out[i] = 'S'
  elseif mode == 'C' and num(redis.call('HGET', KEYS[3], key)) + 1 >= maxAttempts then
    out[i] = 'G'
  elseif mode == 'M' and redis.call('HINCRBY', KEYS[4], key, 1) > maxMisses then
    redis.call('HDEL', KEYS[4], key)
    redis.call('ZADD', KEYS[5], 'NX', ver, key)
    if tonumber(ver) > num(redis.call('GET', KEYS[7])) then redis.call('SET', KEYS[7], ver) end
    out[i] = 'O'
  else
    if mode == 'C' then redis.call('HINCRBY', KEYS[3], key, 1) end
    redis.call('ZADD', KEYS[1], ver, key)
    out[i] = 'Q'
  end
end
return reply(out)
