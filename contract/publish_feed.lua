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

local FIELD_PREV, FIELD_TOPIC, FIELD_DATA = '{{FieldPrev}}', '{{FieldTopic}}', '{{FieldData}}'
local FEED_ENVELOPE_VERSION = '{{FeedEnvelopeVersion}}'

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

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('GET', last)
if not prev then
  local n = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #n > 0 then prev = n[1][1] else prev = '0-0' end
end
local pms, pseq = string.match(prev, '^(%d+)-(%d+)$')
pms, pseq = tonumber(pms), tonumber(pseq)
local id
if now > pms then
  id = string.format('%.0f-0', now)
else
  id = string.format('%.0f-%.0f', pms, pseq + 1)
end

if maxlen > 0 then
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id, FIELD_PREV, prev, FIELD_TOPIC, name, FIELD_DATA, data)
else
  redis.call('XADD', stream, id, FIELD_PREV, prev, FIELD_TOPIC, name, FIELD_DATA, data)
end
local life = 604800000
if maxage > 0 then
  if now > maxage then
    redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', now - maxage))
  end
  redis.call('PEXPIRE', stream, maxage)
  redis.call('SET', last, id, 'PX', math.max(2 * maxage, 604800000))
  life = maxage
else
  redis.call('SET', last, id)
end
redis.call('SET', lookup, id, 'PX', life)
redis.call(cmd, channel, FEED_ENVELOPE_VERSION .. '\n' .. id .. '\n' .. prev .. '\n' .. name .. '\n\n' .. data)
redis.call('SET', idem, id, 'PX', tonumber(ARGV[6]) or 60000)
return id
