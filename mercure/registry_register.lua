-- registry_register.lua: add one subscriber to the node's entries.
--
-- KEYS[1]  <prefix>{mercure-subscriptions}:nodes        node -> lease expiry (ms)
-- KEYS[2]  <prefix>{mercure-subscriptions}:subscribers  subscriber id -> record
-- KEYS[3]  <prefix>{mercure-subscriptions}:node:<node>  the node's subscriber ids
-- ARGV[1]  node id
-- ARGV[2]  lease in milliseconds
-- ARGV[3]  subscriber id
-- ARGV[4]  record (JSON)
--
-- Extends the node's lease to now + lease. Returns 1 if the node held a
-- lease that had not expired, 0 otherwise: then other nodes may have reaped
-- the node's entries, and the node must re-register all of them.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '')
local held = score ~= nil and score > now
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[3])
local expiry = now + tonumber(ARGV[2])
if score == nil or score < expiry then
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
end
if held then return 1 end
return 0
