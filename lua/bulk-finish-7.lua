--[[
  Deletes a settled bulk job: its record, due tick, lease and item list.

  KEYS[1] bulkjobs   HASH  job id -> JSON record
  KEYS[2] bulkdue    ZSET  job id -> next tick
  KEYS[3] bulkleases HASH  job id -> token
  KEYS[4] bulkjob    HASH  key -> version of this job's items (bulkjob:<id>)
  KEYS[5] bulkitems  ZSET  key -> version, items inside a submitted job
  KEYS[6] versions   ZSET  key -> latest version
  KEYS[7] bulkmisses HASH  key -> times missing from a succeeded job's results

  ARGV[1] job id  ARGV[2] token (must hold the lease)

  In-job entries of this job's versions go (an item settled elsewhere, or not settled because
  the job was abandoned, must not stay out of flushAndWait's count); miss counters of items
  that finished go. Returns 1, or 0 when the lease is another worker's.
]]
--@include common

local holder = redis.call('HGET', KEYS[3], ARGV[1])
if present(holder) and holder ~= ARGV[2] then return 0 end
local items = redis.call('HGETALL', KEYS[4])
for i = 1, #items, 2 do
  local key, ver = items[i], items[i + 1]
  local inJob = redis.call('ZSCORE', KEYS[5], key)
  if present(inJob) and tonumber(inJob) == tonumber(ver) then redis.call('ZREM', KEYS[5], key) end
  if not present(redis.call('ZSCORE', KEYS[6], key)) then redis.call('HDEL', KEYS[7], key) end
end
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
