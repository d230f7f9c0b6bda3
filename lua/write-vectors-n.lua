--[[
  Writes a chunk's vectors into their target hashes in one call (a single Redis; on a
  cluster the keys of one call must share a slot). Each target gets the same fence as
  write-vector-1.lua: never over a newer version; a give-up's zero vector never over the
  same version either.

  KEYS[1..n] the target hashes (the number of keys is passed with the call)

  ARGV[1] vector field
  ARGV[2] version field
  ARGV[3] given-up mark field ('' for none): set with a give-up's zero vector, removed when a
          real vector is written (vector search leaves marked targets out)
  ARGV[3i + 1] version of KEYS[i]
  ARGV[3i + 2] '1' when KEYS[i] gets a give-up's zero vector, else '0'
  ARGV[3i + 3] vector blob of KEYS[i] (little-endian float32)

  Returns one entry per key: 1 written, 0 a newer version was there, or the error text
  (a WRONGTYPE target fails alone, the others are still written). A 0 is a refusal the worker
  reports (TargetVersionConflictError), never an `embedded`.
]]
local out = {}
local mark = ARGV[3]
for i = 1, #KEYS do
  local mine = tonumber(ARGV[3 * i + 1])
  local placeholder = ARGV[3 * i + 2] == '1'
  -- One read gives the stored version and whether the given-up mark is there (so a real
  -- vector removes the mark only where there is one: no extra command per item otherwise).
  local cur, marked
  if mark ~= '' then
    cur = redis.pcall('HMGET', KEYS[i], ARGV[2], mark)
    if not cur.err then
      marked = type(cur[2]) == 'string'
      cur = cur[1]
    end
  else
    cur = redis.pcall('HGET', KEYS[i], ARGV[2])
  end
  if type(cur) == 'table' and cur.err then
    out[i] = cur.err
  else
    local have = type(cur) == 'string' and tonumber(cur) or nil
    if have and (have > mine or (have == mine and placeholder)) then
      out[i] = 0
    else
      local res
      if placeholder and mark ~= '' then
        res = redis.pcall('HSET', KEYS[i], ARGV[1], ARGV[3 * i + 3], ARGV[2], ARGV[3 * i + 1], mark, '1')
      else
        res = redis.pcall('HSET', KEYS[i], ARGV[1], ARGV[3 * i + 3], ARGV[2], ARGV[3 * i + 1])
        if marked and not placeholder and not (type(res) == 'table' and res.err) then
          redis.pcall('HDEL', KEYS[i], mark)
        end
      end
      if type(res) == 'table' and res.err then out[i] = res.err else out[i] = 1 end
    end
  end
end
return out
