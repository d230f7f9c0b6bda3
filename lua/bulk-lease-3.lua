--[[
  Leases bulk jobs that are due (to poll, or a 'submitting' record older than its bound) to
  one worker, so two workers never poll or settle the same job at once.

  KEYS[1] bulkdue    ZSET  job id -> tick (ms) when a worker should look at it next
  KEYS[2] bulkleases HASH  job id -> token of the worker holding it
  KEYS[3] bulkjobs   HASH  job id -> JSON record

  ARGV[1] token  ARGV[2] leaseMs  ARGV[3] most jobs to lease

  A lease is the due tick pushed leaseMs ahead: a worker that dies holding it lets the job
  become due again then. Ids without a record are dropped.
  Returns { nowMs, id, recordJson, ... }.
]]
--@include common

local nowMs = math.floor(nowUs() / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(nowMs), 'LIMIT', 0, tonumber(ARGV[3]))
local out = { fmt(nowMs) }
for i = 1, #due do
  local record = redis.call('HGET', KEYS[3], due[i])
  if present(record) then
    redis.call('ZADD', KEYS[1], fmt(nowMs + tonumber(ARGV[2])), due[i])
    redis.call('HSET', KEYS[2], due[i], ARGV[1])
    out[#out + 1] = due[i]
    out[#out + 1] = record
  else
    redis.call('ZREM', KEYS[1], due[i])
    redis.call('HDEL', KEYS[2], due[i])
  end
end
return reply(out)
