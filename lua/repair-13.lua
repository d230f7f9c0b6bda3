--[[
  Repairs bookkeeping that only eviction (or a manual delete) leaves inconsistent, one page
  of one structure per call, so each call is bounded. Between any two of our scripts every
  key in `versions` has its text in `jobs` and sits in pending, delayed or inflight, and
  every key in `jobs` has a version; this script restores that.

  KEYS[1] versions  ZSET  key -> latest version
  KEYS[2] jobs      HASH  key -> text
  KEYS[3] pending   ZSET  key -> ready tick
  KEYS[4] delayed   ZSET  key -> tick when a backoff ends
  KEYS[5] inflight  ZSET  key -> lease expiry tick
  KEYS[6] leases    HASH  key -> claim token
  KEYS[7] retries   HASH  key -> failed attempts
  KEYS[8] failed    HASH  key -> dead letter (JSON)
  KEYS[9] seq       STRING  highest version handed out
  KEYS[10] flush    STRING  forced-flush tick
  KEYS[11] done log STREAM  capped log of done entries (see includes/done-log.lua)
  KEYS[12] bulk     ZSET  key -> version, items waiting for the bulk lane
  KEYS[13] bulkitems ZSET key -> version, items inside a submitted bulk job

  ARGV[1] phase: 'p' (pending), 'd' (delayed), 'v' (versions), 'j' (jobs), in this order: the
          queue entries left with neither text nor version are looked at before anything is
          requeued (a requeue wakes workers, whose claim would drop such entries unreported)
  ARGV[2] SCAN cursor within the phase ('0' to start it)
  ARGV[3] SCAN COUNT hint
  ARGV[4] done channel
  ARGV[5] wake channel
  ARGV[6] done log length cap, in entries (0: no log)

  Per phase:
  'v' a version without its text: the item is lost. Every trace is dropped, a dead letter
      (error 'lost to eviction') is recorded and published, so waiters reject.
      A version with its text but in no queue structure (pending, delayed, inflight, the bulk
      lane's waiting set or its in-job set): queued again (pending, due now).
  'j' a text without its version gets one back (its pending score when it is still pending,
      else a new one) and is queued again.
  'p','d' an entry with neither text nor version: lost, as above (its score as version).

  Returns { nextPhase, nextCursor, lostCount, lostKey..., requeuedKey... }.
  The phase moves on when its SCAN cursor returns to 0 ('j' wraps to 'p').
]]
--@include common
--@include done-log

local phase, cursor, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = nowUs()
local lost, requeued, msg = {}, {}, {}
local logged = {} -- msg without the dead letters, for the done log
local nextPhase = { p = 'd', d = 'v', v = 'j', j = 'p' }

local function jsonString(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == '\\' then return '\\\\' end
    return string.format('\\u%04x', string.byte(c))
  end) .. '"'
end

local function lose(key, version)
  local attempts = num(redis.call('HGET', KEYS[7], key))
  local letter = '{"key":' .. jsonString(key) .. ',"version":' .. fmt(version) ..
    ',"text":"","error":"lost to eviction","attempts":' .. fmt(attempts) ..
    ',"failedAt":' .. fmt(math.floor(now / 1000)) .. '}'
  redis.call('ZREM', KEYS[1], key)
  redis.call('HDEL', KEYS[2], key)
  redis.call('ZREM', KEYS[3], key)
  redis.call('ZREM', KEYS[4], key)
  redis.call('ZREM', KEYS[5], key)
  redis.call('HDEL', KEYS[6], key)
  redis.call('HDEL', KEYS[7], key)
  redis.call('ZREM', KEYS[12], key)
  redis.call('ZREM', KEYS[13], key)
  redis.call('HSET', KEYS[8], key, letter)
  lost[#lost + 1] = key
  msg[#msg + 1] = entry('F', fmt(version), key, letter)
  logged[#logged + 1] = entry('F', fmt(version), key)
end

local dueUntil = now
local function requeue(key, version)
  redis.call('ZADD', KEYS[3], 'NX', fmt(version), key)
  requeued[#requeued + 1] = key
  if version > dueUntil then dueUntil = version end
end

local scanned
if phase == 'j' then
  scanned = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', count)
elseif phase == 'd' then
  scanned = redis.call('ZSCAN', KEYS[4], cursor, 'COUNT', count)
elseif phase == 'v' then
  scanned = redis.call('ZSCAN', KEYS[1], cursor, 'COUNT', count)
else
  phase = 'p'
  scanned = redis.call('ZSCAN', KEYS[3], cursor, 'COUNT', count)
end
local nextCursor = scanned[1]
local page = scanned[2]
local keys, scores = {}, {}
for i = 1, #page, 2 do
  keys[#keys + 1] = page[i]
  scores[#scores + 1] = page[i + 1]
end

if #keys > 0 then
  if phase == 'v' then
    local texts = redis.call('HMGET', KEYS[2], unpack(keys))
    local inP = redis.call('ZMSCORE', KEYS[3], unpack(keys))
    local inD = redis.call('ZMSCORE', KEYS[4], unpack(keys))
    local inI = redis.call('ZMSCORE', KEYS[5], unpack(keys))
    local inB = redis.call('ZMSCORE', KEYS[12], unpack(keys))
    local inJ = redis.call('ZMSCORE', KEYS[13], unpack(keys))
    for i = 1, #keys do
      if not present(texts[i]) then
        lose(keys[i], tonumber(scores[i]))
      elseif not (present(inP[i]) or present(inD[i]) or present(inI[i]) or present(inB[i]) or present(inJ[i])) then
        requeue(keys[i], tonumber(scores[i]))
      end
    end
  elseif phase == 'j' then
    local vers = redis.call('ZMSCORE', KEYS[1], unpack(keys))
    local missing = {}
    for i = 1, #keys do
      if not present(vers[i]) then missing[#missing + 1] = keys[i] end
    end
    if #missing > 0 then
      -- Still pending: its pending score is its version (FIFO place and flush watermark kept).
      local queued = redis.call('ZMSCORE', KEYS[3], unpack(missing))
      local base = num(redis.call('GET', KEYS[9]))
      if base < now then base = now end
      redis.call('SET', KEYS[9], fmt(base + #missing))
      for i = 1, #missing do
        local v = base + i
        if present(queued[i]) then v = tonumber(queued[i]) end
        redis.call('ZADD', KEYS[1], fmt(v), missing[i])
        requeue(missing[i], v)
      end
    end
  else
    local vers = redis.call('ZMSCORE', KEYS[1], unpack(keys))
    local texts = redis.call('HMGET', KEYS[2], unpack(keys))
    for i = 1, #keys do
      if not present(vers[i]) and not present(texts[i]) then lose(keys[i], tonumber(scores[i])) end
    end
  end
end

if #requeued > 0 then
  -- Requeued items are due at once (they were queued long ago), new versions included.
  local f = num(redis.call('GET', KEYS[10]))
  if dueUntil > f then redis.call('SET', KEYS[10], fmt(dueUntil)) end
  redis.call('PUBLISH', ARGV[5], 'repair')
end
if #msg > 0 then
  redis.call('PUBLISH', ARGV[4], appendDoneLog(KEYS[11], ARGV[6], table.concat(logged)) .. table.concat(msg))
end

local out = { phase, nextCursor, #lost }
if nextCursor == '0' then out[1] = nextPhase[phase] end
for i = 1, #lost do out[#out + 1] = lost[i] end
for i = 1, #requeued do out[#out + 1] = requeued[i] end
return reply(out)
