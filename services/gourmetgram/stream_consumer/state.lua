-- Applies one batch of platform events to the real-time state, atomically.
-- ARGV[1]: JSON array of events {t, id, img, ts, p, o, ...}; t = view|comment|flag|upload|skip
--          (skip = a message already dead-lettered: only its offset is recorded).
-- ARGV[2]: JSON config (key templates, thresholds, TTLs, milestone values).
-- An event whose offset is not above the offset stored for its partition was applied before
-- and is skipped; views/comments/flags are also idempotent by event id (ZADD NX), so a replayed
-- event never counts twice. Alerts and milestones are appended to pending lists that the
-- consumer drains (publish / insert) and empties only once their effect is durable.
local events = cjson.decode(ARGV[1])
local cfg = cjson.decode(ARGV[2])
local applied, skipped = 0, 0

local function key(tpl, img) return string.format(tpl, img) end

local function pend(list, rec)
  redis.call('RPUSH', list, cjson.encode(rec))
end

local function alert(trigger, img, ts, field, count, threshold)
  local dedup = key(cfg.k_alert, trigger .. ':' .. img)
  if redis.call('SET', dedup, tostring(ts), 'NX', 'EX', cfg.cooldown) then
    pend(cfg.pending_alerts, {trigger = trigger, image_id = img, ts = ts, field = field,
                              count = count, threshold = threshold})
  end
end

local function add_unique(k, ts, id, total_key)
  if redis.call('ZADD', k, 'NX', ts, id) == 1 then
    local total = redis.call('INCR', total_key)
    redis.call('EXPIRE', total_key, cfg.state_ttl)
    return total
  end
  return nil
end

for _, e in ipairs(events) do
  local stored = redis.call('HGET', cfg.offsets_key, e.p)
  if stored and tonumber(e.o) <= tonumber(stored) then
    skipped = skipped + 1
  else
    applied = applied + 1
    local img, ts = e.img, tonumber(e.ts)
    if img == cjson.null then img = nil end
    if e.t == 'view' then
      local k = key(cfg.k_views, img)
      local total = add_unique(k, ts, e.id, key(cfg.k_total_views, img))
      if total then
        for _, m in ipairs(cfg.milestones) do
          if total == m then
            pend(cfg.pending_milestones, {image_id = img, value = m, ts = ts, event_id = e.id})
          end
        end
      end
      redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.6f', ts - cfg.longest))
      redis.call('EXPIRE', k, cfg.window_ttl)
      local v5 = redis.call('ZCOUNT', k, string.format('%.6f', ts - 300), string.format('%.6f', ts))
      if v5 >= cfg.viral then alert('viral', img, ts, 'views_5min', v5, cfg.viral) end
      local v60 = redis.call('ZCOUNT', k, string.format('%.6f', ts - 3600), string.format('%.6f', ts))
      if v60 >= cfg.popular then alert('popular', img, ts, 'views_1hr', v60, cfg.popular) end
    elseif e.t == 'comment' then
      local k = key(cfg.k_comments, img)
      add_unique(k, ts, e.id, key(cfg.k_total_comments, img))
      redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.6f', ts - cfg.longest))
      redis.call('EXPIRE', k, cfg.window_ttl)
      local c1 = redis.call('ZCOUNT', k, string.format('%.6f', ts - 60), string.format('%.6f', ts))
      if c1 >= cfg.suspicious then alert('suspicious', img, ts, 'comments_1min', c1, cfg.suspicious) end
    elseif e.t == 'flag' then
      if img then
        local k = key(cfg.k_flags, img)
        add_unique(k, ts, e.id, key(cfg.k_total_flags, img))
        redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%.6f', ts - cfg.state_ttl))
        redis.call('EXPIRE', k, cfg.state_ttl)
      end
    elseif e.t == 'upload' then
      local k = key(cfg.k_metadata, img)
      redis.call('HSET', k, 'category', e.category, 'caption_length', e.caption_length,
                 'uploaded_at', e.uploaded_at, 'user_id', e.user_id)
      redis.call('EXPIRE', k, cfg.state_ttl)
    end
    redis.call('HSET', cfg.offsets_key, e.p, e.o)
  end
end
return {applied, skipped}
