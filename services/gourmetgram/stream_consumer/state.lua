-- Applies one batch of platform events to the real-time state, atomically.
-- ARGV[1]: JSON array of events {t, id, img, ts, p, o, ...}; t = view|comment|flag|upload|skip
--          (skip = a message already dead-lettered: only its offset is recorded).
-- ARGV[2]: JSON config (key templates, thresholds, TTLs, milestone values).
-- Returns {applied, replayed, unknown_image, alerts, milestones}: entries waiting in the alert and
-- milestone lists (the consumer drains them only when there are some).
--
-- An event whose offset is not above the offset stored for its partition was applied before
-- and is skipped; views/comments/flags are also idempotent by event id (ZADD NX), so a replayed
-- event never counts twice. Alerts and milestones are appended to pending lists that the
-- consumer drains (publish / insert) and empties only once their effect is durable.
--
-- Cost: per event one ZADD (+ INCR when new) and the ZCOUNTs of the windows whose alert is not
-- in its cooldown; offsets, TTLs and window trims are written once per batch.
--
-- Unknown images: an event for an image whose metadata hash (written by its upload event) is
-- absent is applied, counted as unknown_image, and its keys expire after cfg.unknown_ttl instead
-- of cfg.state_ttl. The upload event may simply not have been read yet (another topic); when it
-- comes, the image's totals get the full TTL. Known images keep their metadata while active.
local events = cjson.decode(ARGV[1])
local cfg = cjson.decode(ARGV[2])
local applied, skipped, unknown = 0, 0, 0
local offsets, dirty = {}, {}   -- partition -> last applied offset; partitions written
local known, cooling = {}, {}   -- image -> metadata exists; alert key -> in cooldown
local ttl, trim = {}, {}        -- key -> TTL to set; key -> {newest ts, horizon}

local function key(tpl, img) return string.format(tpl, img) end

local function keep(k, seconds)
  if (ttl[k] or 0) < seconds then ttl[k] = seconds end
end

local function trim_later(k, ts, horizon)
  local t = trim[k]
  if not t or t[1] < ts then trim[k] = {ts, horizon} end
end

local function is_known(img)
  local v = known[img]
  if v == nil then
    v = redis.call('EXISTS', key(cfg.k_metadata, img)) == 1
    known[img] = v
  end
  return v
end

local function pend(list, rec)
  redis.call('RPUSH', list, cjson.encode(rec))
end

local function alert_key(trigger, img) return key(cfg.k_alert, trigger .. ':' .. img) end

local function in_cooldown(trigger, img)
  local k = alert_key(trigger, img)
  local v = cooling[k]
  if v == nil then
    v = redis.call('EXISTS', k) == 1
    cooling[k] = v
  end
  return v
end

local function alert(trigger, img, ts, field, count, threshold)
  local k = alert_key(trigger, img)
  if redis.call('SET', k, tostring(ts), 'NX', 'EX', cfg.cooldown) then
    pend(cfg.pending_alerts, {trigger = trigger, image_id = img, ts = ts, field = field,
                              count = count, threshold = threshold})
  end
  cooling[k] = true
end

local function add_unique(k, ts, id, total_key, state_ttl)
  if redis.call('ZADD', k, 'NX', ts, id) == 1 then
    local total = redis.call('INCR', total_key)
    keep(total_key, state_ttl)
    return total
  end
  return nil
end

local function count(k, ts, window)
  return redis.call('ZCOUNT', k, string.format('%.6f', ts - window), string.format('%.6f', ts))
end

local function image_ttl(img)
  if is_known(img) then
    keep(key(cfg.k_metadata, img), cfg.state_ttl)
    return cfg.state_ttl
  end
  unknown = unknown + 1
  return cfg.unknown_ttl
end

local function view(img, ts, id)
  local sttl = image_ttl(img)
  local k = key(cfg.k_views, img)
  local total = add_unique(k, ts, id, key(cfg.k_total_views, img), sttl)
  if total then
    for _, m in ipairs(cfg.milestones) do
      if total == m then
        pend(cfg.pending_milestones, {image_id = img, value = m, ts = ts, event_id = id})
      end
    end
  end
  trim_later(k, ts, cfg.longest)
  keep(k, math.min(cfg.window_ttl, sttl))
  local want_viral, want_popular = not in_cooldown('viral', img), not in_cooldown('popular', img)
  if want_viral or want_popular then
    local v60 = count(k, ts, 3600)
    if want_viral and v60 >= cfg.viral then
      local v5 = count(k, ts, 300)
      if v5 >= cfg.viral then alert('viral', img, ts, 'views_5min', v5, cfg.viral) end
    end
    if want_popular and v60 >= cfg.popular then alert('popular', img, ts, 'views_1hr', v60, cfg.popular) end
  end
end

local function comment(img, ts, id)
  local sttl = image_ttl(img)
  local k = key(cfg.k_comments, img)
  add_unique(k, ts, id, key(cfg.k_total_comments, img), sttl)
  trim_later(k, ts, cfg.longest)
  keep(k, math.min(cfg.window_ttl, sttl))
  if not in_cooldown('suspicious', img) then
    local c1 = count(k, ts, 60)
    if c1 >= cfg.suspicious then alert('suspicious', img, ts, 'comments_1min', c1, cfg.suspicious) end
  end
end

local function flag(img, ts, id)
  local sttl = image_ttl(img)
  local k = key(cfg.k_flags, img)
  add_unique(k, ts, id, key(cfg.k_total_flags, img), sttl)
  trim_later(k, ts, cfg.state_ttl)
  keep(k, sttl)
end

local function upload(e)
  local img = e.img
  local k = key(cfg.k_metadata, img)
  redis.call('HSET', k, 'category', e.category, 'caption_length', e.caption_length,
             'uploaded_at', e.uploaded_at, 'user_id', e.user_id)
  keep(k, cfg.state_ttl)
  known[img] = true
  -- Events read before this upload gave the image the short TTL: give it the full one.
  for _, tpl in ipairs({cfg.k_total_views, cfg.k_total_comments, cfg.k_total_flags, cfg.k_flags}) do
    local t = key(tpl, img)
    if redis.call('EXISTS', t) == 1 then keep(t, cfg.state_ttl) end
  end
end

-- Refuse a malformed batch before writing anything (the consumer then applies it one by one).
for i, e in ipairs(events) do
  if tonumber(e.o) == nil or (e.t ~= 'skip' and tonumber(e.ts) == nil) then
    error('event ' .. i .. ' has no numeric offset or time')
  end
end

for _, e in ipairs(events) do
  local o = tonumber(e.o)
  local stored = offsets[e.p]
  if stored == nil then
    stored = tonumber(redis.call('HGET', cfg.offsets_key, e.p)) or -1
    offsets[e.p] = stored
  end
  if o <= stored then
    skipped = skipped + 1
  else
    applied = applied + 1
    local img, ts = e.img, tonumber(e.ts)
    if img == cjson.null then img = nil end
    if e.t == 'view' then
      view(img, ts, e.id)
    elseif e.t == 'comment' then
      comment(img, ts, e.id)
    elseif e.t == 'flag' then
      if img then flag(img, ts, e.id) end
    elseif e.t == 'upload' then
      upload(e)
    end
    offsets[e.p] = o
    dirty[e.p] = true
  end
end

local fields = {}
for p, _ in pairs(dirty) do
  fields[#fields + 1] = p
  fields[#fields + 1] = offsets[p]
end
if #fields > 0 then redis.call('HSET', cfg.offsets_key, unpack(fields)) end
for k, t in pairs(trim) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.6f', t[1] - t[2]))
end
for k, seconds in pairs(ttl) do redis.call('EXPIRE', k, seconds) end
redis.call('HINCRBY', cfg.counts_key, 'applied', applied)
if skipped > 0 then redis.call('HINCRBY', cfg.counts_key, 'replayed', skipped) end
if unknown > 0 then redis.call('HINCRBY', cfg.counts_key, 'unknown_image', unknown) end
return {applied, skipped, unknown, redis.call('LLEN', cfg.pending_alerts), redis.call('LLEN', cfg.pending_milestones)}
