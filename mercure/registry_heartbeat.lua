-- registry_heartbeat.lua: renew the node's lease.
--
-- KEYS[1]  <prefix>{mercure-subscriptions}:nodes
-- ARGV[1]  node id
-- ARGV[2]  lease in milliseconds
--
-- Sets the node's lease to expire at now + lease. Returns 1 if the node
-- held a lease that had not expired, 0 otherwise (first heartbeat, or the
-- lease ran out: other nodes may have reaped the node's entries).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '')
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if score ~= nil and score > now then return 1 end
return 0
