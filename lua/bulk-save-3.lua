--[[
  Saves a bulk job's record if the caller still holds its lease, and sets when it is due next.

  KEYS[1] bulkdue    ZSET  job id -> tick (ms) when a worker should look at it next
  KEYS[2] bulkleases HASH  job id -> token of the worker holding it
  KEYS[3] bulkjobs   HASH  job id -> JSON record

  ARGV[1] job id  ARGV[2] token  ARGV[3] record JSON
  ARGV[4] due in ms from now (the next poll)  ARGV[5] '1': release the lease (any worker may
          take the job when due), else keep it

  Returns 1 when saved, 0 when the lease is another worker's (nothing written).
]]
--@include common

if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
local nowMs = math.floor(nowUs() / 1000)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], fmt(nowMs + tonumber(ARGV[4])), ARGV[1])
if ARGV[5] == '1' then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
