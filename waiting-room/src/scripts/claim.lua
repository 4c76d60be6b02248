-- The coordinator claims an admission for a purchase: ADMITTED -> PURCHASING. The slot
-- stays taken for the purchase lease, until the coordinator releases it. Claiming again
-- with the same idempotency key renews the lease (a retried purchase).
-- KEYS[1] room hash, KEYS[2] active set, KEYS[3] the fan's hash
-- ARGV[1] user id, ARGV[2] admission id (from the verified token), ARGV[3] idempotency
-- key, ARGV[4] seats the purchase asks for, ARGV[5] when the coordinator received the
-- purchase (ms; empty: now): the admission must be unexpired then. An admission lapses
-- only claim_grace_ms after its expiry (admit.lua), so a purchase received in time
-- still finds it ADMITTED however long the coordinator took to claim it.
-- Returns {'OK'}, {'NO_ROOM'}, {'INVALID', why}, {'EXPIRED'} or {'USED'}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NO_ROOM'}
end
local state = redis.call('HGET', KEYS[3], 'state')
if not state or state == 'WAITING' or state == 'PRE_QUEUE' or state == 'SOLD_OUT' then
  return {'INVALID', 'not_admitted'}
end
if redis.call('HGET', KEYS[3], 'admission_id') ~= ARGV[2] then
  return {'INVALID', 'superseded'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(redis.call('HGET', KEYS[1], 'purchase_lease_ms'))
if state == 'PURCHASING' then
  if redis.call('HGET', KEYS[3], 'key') == ARGV[3] then
    redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
    return {'OK'}
  end
  return {'USED'}
end
if state == 'ADMITTED' then
  local received = tonumber(ARGV[5])
  local as_of = now
  if received and received < now then
    as_of = received
  end
  if tonumber(redis.call('HGET', KEYS[3], 'expires_at')) <= as_of then
    redis.call('HSET', KEYS[3], 'state', 'EXPIRED', 'expired_at', now)
    redis.call('HINCRBY', KEYS[1], 'expired', 1)
    redis.call('ZREM', KEYS[2], ARGV[1])
    return {'EXPIRED'}
  end
  redis.call('HSET', KEYS[3], 'state', 'PURCHASING', 'key', ARGV[3], 'seats', ARGV[4],
    'claimed_at', now)
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'claims', 1)
  local purchasing = redis.call('HINCRBY', KEYS[1], 'purchasing', 1)
  if purchasing > tonumber(redis.call('HGET', KEYS[1], 'max_purchasing_seen')) then
    redis.call('HSET', KEYS[1], 'max_purchasing_seen', purchasing)
  end
  return {'OK'}
end
if state == 'EXPIRED' and not redis.call('HGET', KEYS[3], 'key') then
  return {'EXPIRED'}
end
return {'USED'}
