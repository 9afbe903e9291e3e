-- lib.lua: what the contract's scripts share; package contract puts it in
-- front of each of them (publish.lua, publish_feed.lua), so every script
-- is whole on its own.

-- Names shared with the Go readers (package contract fills them in).
local FIELD_PREV, FIELD_TOPIC = '{{FieldPrev}}', '{{FieldTopic}}'
local FIELD_TYPE, FIELD_DATA = '{{FieldType}}', '{{FieldData}}'
local ENVELOPE_VERSION, FEED_ENVELOPE_VERSION = '{{EnvelopeVersion}}', '{{FeedEnvelopeVersion}}'

-- newest returns the last id issued for a source: its record, or, when the
-- record has expired, the stream's newest entry, or 0-0.
local function newest(lastkey, streamkey)
  local v = redis.call('GET', lastkey)
  if v then return v end
  local n = redis.call('XREVRANGE', streamkey, '+', '-', 'COUNT', 1)
  if #n > 0 then return n[1][1] end
  return '0-0'
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- above reports whether ms-seq orders after bms-bseq.
local function above(ms, seq, bms, bseq)
  return ms > bms or (ms == bms and seq > bseq)
end

-- nextid is the id of an event published at now (ms) after ids up to
-- bms-bseq: now with seq 0 when the clock is past them, else one seq
-- further, so ids increase even when the clock steps back.
local function nextid(now, bms, bseq)
  if now > bms then return string.format('%.0f-0', now) end
  return string.format('%.0f-%.0f', bms, bseq + 1)
end

-- xadd appends an entry with id, trimmed approximately to keep entries (0
-- keeps all).
local function xadd(skey, keep, id, ...)
  if keep > 0 then
    redis.call('XADD', skey, 'MAXLEN', '~', keep, id, ...)
  else
    redis.call('XADD', skey, id, ...)
  end
end

-- retain applies the age limit (0 keeps all) to a source after it took id
-- at now: trims, sets the stream's expiry, and records the id under its
-- :last key, which outlives the stream (twice the age, at least 7 days) so
-- a reader can still tell "expired, nothing missed" from "events lost".
local function retain(skey, lkey, id, maxage, now)
  if maxage > 0 then
    if now > maxage then
      redis.call('XTRIM', skey, 'MINID', '~', string.format('%.0f', now - maxage))
    end
    redis.call('PEXPIRE', skey, maxage)
    redis.call('SET', lkey, id, 'PX', math.max(2 * maxage, 604800000))
  else
    redis.call('SET', lkey, id)
  end
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

