-- registry_nodes.lua: the nodes whose lease holds, or has expired.
--
-- KEYS[1]  <prefix>{mercure-subscriptions}:nodes
-- ARGV[1]  "alive" or "expired"
--
-- Time is Redis's own (TIME), so nodes' clocks need not agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'alive' then
  return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
