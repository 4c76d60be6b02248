-- The coordinator releases the admission of an ended purchase: the slot comes back and
-- the fan is PURCHASED (committed) or FINISHED. Idempotent. A purchase whose lease
-- lapsed earlier (the fan reads EXPIRED) still gets its outcome recorded.
-- KEYS[1] room hash, KEYS[2] active set, KEYS[3] the fan's hash
-- ARGV[1] user id, ARGV[2] admission id, ARGV[3] '1' when the purchase committed,
-- ARGV[4] the idempotency key the admission was claimed with
-- Returns 1 when released now, 0 when there was nothing to release.
if redis.call('HGET', KEYS[3], 'admission_id') ~= ARGV[2]
    or redis.call('HGET', KEYS[3], 'key') ~= ARGV[4] then
  return 0
end
local state = redis.call('HGET', KEYS[3], 'state')
local final = 'FINISHED'
if ARGV[3] == '1' then
  final = 'PURCHASED'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if state == 'PURCHASING' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'purchasing', -1)
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(redis.call('HGET', KEYS[3], 'seats') or '1'))
elseif not (state == 'EXPIRED' and redis.call('HGET', KEYS[3], 'key')) then
  return 0
end
redis.call('HSET', KEYS[3], 'state', final, 'ended_at', now)
redis.call('HINCRBY', KEYS[1], 'releases', 1)
if final == 'PURCHASED' then
  redis.call('HINCRBY', KEYS[1], 'purchased', 1)
end
return 1
