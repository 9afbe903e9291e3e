-- publish.lua: the gateway's publish contract, version 2.
--
-- KEYS[1]  <prefix>{<first>}<rest>:stream  the topic's history (a Redis Stream)
-- KEYS[2]  <prefix>{<first>}<rest>:last    the last id issued for the topic
-- KEYS[3]  <prefix>{<first>}<rest>:events  the topic's pub/sub channel
-- KEYS[4]  <prefix>{<first>}<rest>:idem:<key>, an idempotency record
--          (optional for a topic without "/", required for one with "/")
-- KEYS[5]  <prefix>{<first>}/**:stream     the feed's history   } for a topic
-- KEYS[6]  <prefix>{<first>}/**:last       the feed's last id   } with "/":
-- KEYS[7]  <prefix>{<first>}/**:events     the feed's channel   } required
-- ARGV[1]  event type, "" for none (the SSE default "message")
-- ARGV[2]  data (UTF-8 text)
-- ARGV[3]  topic entries to keep, trimmed approximately (MAXLEN ~); 0 keeps all
-- ARGV[4]  age to keep in milliseconds (MINID ~ and key expiry); 0 keeps all
-- ARGV[5]  "PUBLISH", or "SPUBLISH" on Redis Cluster
-- ARGV[6]  the idempotency record's lifetime in milliseconds (with KEYS[4])
-- ARGV[7]  the topic's name (with KEYS[5..7])
-- ARGV[8]  feed entries to keep (MAXLEN ~); 0 keeps all (with KEYS[5..7])
-- ARGV[9]  optional: an id to give the event if it lies above the topic's
--          and the feed's last ids (the contract v1 bridge keeps a v1
--          event's id, so cursors stay valid across the two)
--
-- A topic's keys carry its first path segment as their hash tag ({orders}
-- for orders/42; the whole name for a topic without "/"), so the topic, its
-- feed and their keys live in one Redis Cluster slot. The feed of orders/
-- holds every event of every topic under orders/, in order: it is what a
-- pattern subscription (orders/*) follows and resumes from.
--
-- With KEYS[4], publishing is idempotent: a second call with the same key
-- within its lifetime returns the first call's id and publishes nothing. A
-- retry after a lost reply (a client library retrying on a new connection,
-- or a service retrying a request) then cannot publish the event twice.
--
-- Returns the new event id. Ids are "<ms>-<seq>" and strictly increase per
-- topic and per feed, also across expiry of a stream and server clock steps
-- backwards: the id is computed from TIME and the :last records, never from
-- XADD's "*". The event has the same id in the topic's and the feed's
-- history. Each entry stores its predecessor's id in its source in field
-- FIELD_PREV, so a reader can prove that nothing between two ids was trimmed
-- away.

local stream, last, channel, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fstream, flast, fchannel = KEYS[5], KEYS[6], KEYS[7]
local typ, data = ARGV[1], ARGV[2]
local maxlen, maxage, cmd = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local topic, fmaxlen = ARGV[7], tonumber(ARGV[8])
if cmd ~= 'PUBLISH' and cmd ~= 'SPUBLISH' then
  return redis.error_reply('ERR publish command must be PUBLISH or SPUBLISH')
end
if maxlen == nil or maxage == nil then
  return redis.error_reply('ERR max length and max age must be numbers')
end

-- Keys laid out for contract v1 ({orders/42}) are refused rather than
-- written where no gateway of contract v2 reads.
if topic == nil then
  if string.find(stream, '{[^}]*/[^}]*}:stream$') then
    return redis.error_reply('ERR contract v2: a topic with "/" keeps its keys under the hash tag of its first ' ..
      'segment (<prefix>{orders}/42:stream) and needs its feed keys (KEYS[5..7]) and name (ARGV[7]); see the README')
  end
else
  local first, rest = string.match(topic, '^([^/]+)(/.*)$')
  if first == nil or fstream == nil or fmaxlen == nil then
    return redis.error_reply('ERR contract v2: feed keys (KEYS[5..7]), the topic (ARGV[7]) and the feed length ' ..
      '(ARGV[8]) go together, for a topic with "/" after its first segment')
  end
  local function ends(s, suffix) return string.sub(s, -#suffix) == suffix end
  if not ends(stream, '{' .. first .. '}' .. rest .. ':stream') or not ends(fstream, '{' .. first .. '}/**:stream') then
    return redis.error_reply('ERR contract v2: the keys do not belong to topic ' .. topic)
  end
end

if idem then
  local prior = redis.call('GET', idem)
  if prior then return prior end
end

local now = clock()
local prev = newest(last, stream)
local bms, bseq = parse(prev)
local fprev
if fstream then
  fprev = newest(flast, fstream)
  local fms, fseq = parse(fprev)
  if above(fms, fseq, bms, bseq) then bms, bseq = fms, fseq end
end
local id
local wms, wseq = nil, nil
if ARGV[9] and ARGV[9] ~= '' then wms, wseq = parse(ARGV[9]) end
if wms and above(wms, wseq, bms, bseq) then
  id = string.format('%.0f-%.0f', wms, wseq)
else
  id = nextid(now, bms, bseq)
end

if typ ~= '' then
  xadd(stream, maxlen, id, FIELD_PREV, prev, FIELD_TYPE, typ, FIELD_DATA, data)
else
  xadd(stream, maxlen, id, FIELD_PREV, prev, FIELD_DATA, data)
end
retain(stream, last, id, maxage, now)
redis.call(cmd, channel, ENVELOPE_VERSION .. '\n' .. id .. '\n' .. prev .. '\n' .. typ .. '\n' .. data)
if fstream then
  if typ ~= '' then
    xadd(fstream, fmaxlen, id, FIELD_PREV, fprev, FIELD_TOPIC, topic, FIELD_TYPE, typ, FIELD_DATA, data)
  else
    xadd(fstream, fmaxlen, id, FIELD_PREV, fprev, FIELD_TOPIC, topic, FIELD_DATA, data)
  end
  retain(fstream, flast, id, maxage, now)
  redis.call(cmd, fchannel, FEED_ENVELOPE_VERSION .. '\n' .. id .. '\n' .. fprev .. '\n' .. topic .. '\n' .. typ .. '\n' .. data)
end
if idem then
  redis.call('SET', idem, id, 'PX', tonumber(ARGV[6]) or 60000)
end
return id
