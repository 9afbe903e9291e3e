-- publish_feed.lua: appends an event to a feed that has no topic streams
-- of its own (the Mercure hub's), contract version 2.
--
-- KEYS[1]  <prefix>{<tag>}/**:stream   the feed's history
-- KEYS[2]  <prefix>{<tag>}/**:last     the last id issued for the feed
-- KEYS[3]  <prefix>{<tag>}/**:events   the feed's channel
-- KEYS[4]  <prefix>{<tag>}/**:id:<key> a lookup record: the event's id, by
--          the key the front door resumes from (a publisher-chosen id)
-- KEYS[5]  <prefix>{<tag>}/**:idem:<key> an idempotency record
-- ARGV[1]  the event's name: the entry's FIELD_TOPIC and the envelope's
--          topic (no LF)
-- ARGV[2]  data
-- ARGV[3]  entries to keep (MAXLEN ~); 0 keeps all
-- ARGV[4]  age to keep in milliseconds (MINID ~, key expiry and the lookup
--          record's life); 0 keeps all (the lookup record then lives 7 days)
-- ARGV[5]  "PUBLISH", or "SPUBLISH" on Redis Cluster
-- ARGV[6]  the idempotency record's lifetime in milliseconds
--
-- Returns the event's id, computed as publish.lua computes it; the entry
-- stores its predecessor's id, as every entry does. A second call with the
-- same idempotency key within its lifetime returns the first id and writes
-- nothing.

local stream, last, channel, lookup, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local name, data = ARGV[1], ARGV[2]
local maxlen, maxage, cmd = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if cmd ~= 'PUBLISH' and cmd ~= 'SPUBLISH' then
  return redis.error_reply('ERR publish command must be PUBLISH or SPUBLISH')
end
if maxlen == nil or maxage == nil or idem == nil or name == nil or name == '' or string.find(name, '\n') then
  return redis.error_reply('ERR feed publish: five keys, a name without LF, and numeric limits are required')
end

local prior = redis.call('GET', idem)
if prior then return prior end

local now = clock()
local prev = newest(last, stream)
local id = nextid(now, parse(prev))
xadd(stream, maxlen, id, FIELD_PREV, prev, FIELD_TOPIC, name, FIELD_DATA, data)
retain(stream, last, id, maxage, now)
local life = 604800000
if maxage > 0 then life = maxage end
redis.call('SET', lookup, id, 'PX', life)
redis.call(cmd, channel, FEED_ENVELOPE_VERSION .. '\n' .. id .. '\n' .. prev .. '\n' .. name .. '\n\n' .. data)
redis.call('SET', idem, id, 'PX', tonumber(ARGV[6]) or 60000)
return id
