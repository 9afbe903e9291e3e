-- publish.lua: the gateway's publish contract, version 1.
--
-- KEYS[1]  <prefix>{<topic>}:stream   the topic's history (a Redis Stream)
-- KEYS[2]  <prefix>{<topic>}:last     the last id issued for the topic
-- KEYS[3]  <prefix>{<topic>}:events   the pub/sub channel
-- ARGV[1]  event type, "" for none (the SSE default "message")
-- ARGV[2]  data (UTF-8 text)
-- ARGV[3]  entries to keep, trimmed approximately (MAXLEN ~); 0 keeps all
-- ARGV[4]  age to keep in milliseconds (MINID ~ and key expiry); 0 keeps all
-- ARGV[5]  "PUBLISH", or "SPUBLISH" on Redis Cluster
-- KEYS[4]  optional: <prefix>{<topic>}:idem:<key>, an idempotency record
-- ARGV[6]  its lifetime in milliseconds (read only when KEYS[4] is given)
--
-- With KEYS[4], publishing is idempotent: a second call with the same key
-- within its lifetime returns the first call's id and publishes nothing. A
-- retry after a lost reply (a client library retrying on a new connection,
-- or a service retrying a request) then cannot publish the event twice.
--
-- Returns the new event id. Ids are "<ms>-<seq>" and strictly increase per
-- topic, also across expiry of the stream and server clock steps backwards:
-- the id is computed from TIME and the :last record, never from XADD's "*".
-- The entry stores its predecessor's id in field "p", so a reader can prove
-- that nothing between two ids was trimmed away.

local stream, last, channel = KEYS[1], KEYS[2], KEYS[3]
local typ, data = ARGV[1], ARGV[2]
local maxlen, maxage, cmd = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if cmd ~= 'PUBLISH' and cmd ~= 'SPUBLISH' then
  return redis.error_reply('ERR publish command must be PUBLISH or SPUBLISH')
end
if maxlen == nil or maxage == nil then
  return redis.error_reply('ERR max length and max age must be numbers')
end

local idem = KEYS[4]
if idem then
  local prior = redis.call('GET', idem)
  if prior then return prior end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local prev = redis.call('GET', last)
if not prev then
  -- No record (first event, or the record expired): continue after the
  -- stream's newest entry if the stream still exists.
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #newest > 0 then prev = newest[1][1] else prev = '0-0' end
end
local pms, pseq = string.match(prev, '^(%d+)-(%d+)$')
pms, pseq = tonumber(pms), tonumber(pseq)

local id
if now > pms then
  id = string.format('%.0f-0', now)
else
  id = string.format('%.0f-%.0f', pms, pseq + 1)
end

if typ ~= '' then
  if maxlen > 0 then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id, 'p', prev, 't', typ, 'd', data)
  else
    redis.call('XADD', stream, id, 'p', prev, 't', typ, 'd', data)
  end
elseif maxlen > 0 then
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id, 'p', prev, 'd', data)
else
  redis.call('XADD', stream, id, 'p', prev, 'd', data)
end

if maxage > 0 then
  if now > maxage then
    redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', now - maxage))
  end
  redis.call('PEXPIRE', stream, maxage)
  -- The :last record outlives the stream (twice the age, at least 7 days) so
  -- a reader can still tell "expired, nothing missed" from "events lost".
  redis.call('SET', last, id, 'PX', math.max(2 * maxage, 604800000))
else
  redis.call('SET', last, id)
end

redis.call(cmd, channel, '1\n' .. id .. '\n' .. prev .. '\n' .. typ .. '\n' .. data)
if idem then
  redis.call('SET', idem, id, 'PX', tonumber(ARGV[6]) or 60000)
end
return id
