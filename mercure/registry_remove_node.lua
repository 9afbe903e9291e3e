-- registry_remove_node.lua: remove a node and all its entries, atomically.
--
-- KEYS[1]  <prefix>{mercure-subscriptions}:nodes
-- KEYS[2]  <prefix>{mercure-subscriptions}:subscribers
-- KEYS[3]  <prefix>{mercure-subscriptions}:node:<node>
-- ARGV[1]  node id
-- ARGV[2]  "expired": only if the node's lease has expired (reaping a dead
--          node); "always": whatever its lease (a node leaving)
--
-- Returns the records removed. Reaping is atomic, so when several nodes
-- reap the same dead node, exactly one of them gets its records.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == 'expired' then
  local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '')
  if score == nil or score > now then return {} end
end
local ids = redis.call('SMEMBERS', KEYS[3])
local out = {}
-- In chunks: unpack() of too many values overflows Lua's stack.
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  local recs = redis.call('HMGET', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[2], unpack(chunk))
  for j = 1, #chunk do
    if recs[j] then out[#out + 1] = recs[j] end
  end
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return out
