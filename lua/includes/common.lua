-- Shared helpers, inlined into each script by scripts/build-lua.mjs.
-- Time comes from the Redis server (TIME), so every process shares one clock.
-- Numbers are formatted with %.0f: tostring() would print large scores in exponent form.
local function nowUs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000.0 + tonumber(t[2])
end

local function fmt(n)
  return string.format('%.0f', n)
end

-- Entry of a done/failed message: <status><version>:<keylen>:<key><msglen>:<msg>
-- Length prefixes keep any byte in a key or message safe.
local function entry(status, version, key, msg)
  msg = msg or ''
  return status .. version .. ':' .. #key .. ':' .. key .. #msg .. ':' .. msg
end

-- unpack() has a stack limit; call fn(list slice) in slices of at most 4000 values.
local function inSlices(list, fn)
  local n = #list
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    fn(unpack(list, i, j))
    i = j + 1
  end
end

-- A reply value is present only when it is a string: real Redis gives false for a missing
-- value, ioredis-mock's Lua VM gives false or a userdata null (in multi-value replies).
local function present(v)
  return type(v) == 'string'
end

-- Number of a reply value; 0 when absent.
local function num(v)
  if type(v) == 'string' then return tonumber(v) end
  return 0
end

-- Returns a table built element by element through a constructor: some Lua VMs (the
-- ioredis-mock one) only convert tables whose elements sit in the array part.
local function reply(t)
  return { unpack(t) }
end
