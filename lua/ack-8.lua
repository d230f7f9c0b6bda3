--[[
  Acknowledges a written chunk: its vectors are already in the target hashes.

  KEYS[1] inflight  ZSET  key -> lease expiry tick
  KEYS[2] leases    HASH  key -> claim token
  KEYS[3] jobs      HASH  key -> text
  KEYS[4] versions  ZSET  key -> latest version
  KEYS[5] retries   HASH  key -> failed attempts
  KEYS[6] pending   ZSET  key -> ready tick
  KEYS[7] throughput HASH 10-second bucket -> items finished in it (last minute kept)
  KEYS[8] done log  STREAM capped log of done entries (see includes/done-log.lua)

  ARGV[1] claim token
  ARGV[2] done channel
  ARGV[3..] key, version, key, version, ...
  ARGV[last] done log length cap, in entries (0: no log)

  Per key: the lease is released if it is still ours. The item is finished only if its
  version is still the latest; otherwise newer text is pending and will be embedded next.
  A lease that expired and was not claimed again still counts: our write is the same version.
  Returns { status, ... } per key: 'D' done, 'S' superseded by newer text, 'L' lease held by
  another worker (it will finish the item), 'G' gone (finished elsewhere already).
  Publishes one message listing the done entries, appended to the done log first.
]]
--@include common
--@include done-log

local token = ARGV[1]
local n = (#ARGV - 3) / 2
local keys, vers = {}, {}
for i = 1, n do
  keys[i] = ARGV[2 * i + 1]
  vers[i] = ARGV[2 * i + 2]
end

local holders = redis.call('HMGET', KEYS[2], unpack(keys))
local current = redis.call('ZMSCORE', KEYS[4], unpack(keys))
local released, finished, unparked, status, msg = {}, {}, {}, {}, {}
-- unparked: finished items whose expired lease was reclaimed into pending: drop them there.
for i = 1, n do
  local holder = holders[i]
  if not present(holder) then holder = nil end
  if holder and holder ~= token then
    status[i] = 'L'
  else
    if holder == token then released[#released + 1] = keys[i] end
    if present(current[i]) and tonumber(current[i]) == tonumber(vers[i]) then
      finished[#finished + 1] = keys[i]
      if not holder then unparked[#unparked + 1] = keys[i] end
      status[i] = 'D'
      msg[#msg + 1] = entry('D', vers[i], keys[i])
    elseif present(current[i]) then
      status[i] = 'S'
    else
      status[i] = 'G'
    end
  end
end

if #released > 0 then
  redis.call('ZREM', KEYS[1], unpack(released))
  redis.call('HDEL', KEYS[2], unpack(released))
end
if #finished > 0 then
  redis.call('HDEL', KEYS[3], unpack(finished))
  redis.call('ZREM', KEYS[4], unpack(finished))
  redis.call('HDEL', KEYS[5], unpack(finished))
end
if #unparked > 0 then redis.call('ZREM', KEYS[6], unpack(unparked)) end
if #finished > 0 then
  local bucket = math.floor(nowUs() / 10000000)
  redis.call('HINCRBY', KEYS[7], fmt(bucket), #finished)
  if redis.call('HLEN', KEYS[7]) > 8 then
    local fields = redis.call('HKEYS', KEYS[7])
    for i = 1, #fields do
      if tonumber(fields[i]) < bucket - 6 then redis.call('HDEL', KEYS[7], fields[i]) end
    end
  end
end
if #msg > 0 then
  local body = table.concat(msg)
  redis.call('PUBLISH', ARGV[2], appendDoneLog(KEYS[8], ARGV[#ARGV], body) .. body)
end
return reply(status)
