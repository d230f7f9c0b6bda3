--[[
  Writes one vector into its target hash unless a newer version is already there.
  This is the fence that keeps a stale vector out: a worker whose lease expired while it
  was still running cannot overwrite the vector of newer text.

  KEYS[1] the target hash (any slot: called once per target, pipelined per node)

  ARGV[1] vector field
  ARGV[2] version field
  ARGV[3] version
  ARGV[4] vector blob (little-endian float32)
  ARGV[5] '1' for a give-up's zero vector: written only over an older version, never over
          the same one (another worker may hold this version's real vector already)
  ARGV[6] given-up mark field: set to '1' with a give-up's zero vector, removed when a real
          vector is written (vector search leaves marked targets out); '' for none

  Returns 1 when written, 0 when a newer (or, for a zero vector, the same) version was there.
  The worker treats 0 for a real vector as a refusal (TargetVersionConflictError): nothing is
  reported embedded; if the item's version is still the latest the target holds restored or
  foreign data, and the item is given up as a dead letter (see Worker.refuse).
]]
local mark = ARGV[6] or ''
local cur, marked
if mark ~= '' then
  local both = redis.call('HMGET', KEYS[1], ARGV[2], mark)
  cur, marked = both[1], type(both[2]) == 'string'
else
  cur = redis.call('HGET', KEYS[1], ARGV[2])
end
if type(cur) == 'string' then
  local have, mine = tonumber(cur), tonumber(ARGV[3])
  if have > mine or (have == mine and ARGV[5] == '1') then return 0 end
end
if ARGV[5] == '1' then
  if mark ~= '' then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], ARGV[2], ARGV[3], mark, '1')
  else
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], ARGV[2], ARGV[3])
  end
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], ARGV[2], ARGV[3])
  if marked then redis.call('HDEL', KEYS[1], mark) end
end
return 1
