-- One admission round of a room, atomically:
-- 1. admissions past their expiry and the claim grace lapse: the fan is EXPIRED and the
--    slot comes back (the grace lets a purchase the coordinator received before the
--    expiry still claim the admission). A purchase claim past its lease does not lapse:
--    it is returned as overdue, for the service to ask the coordinator whether the
--    purchase ended (only then does its slot come back), and looked at again a lease
--    later;
-- 2. fans are admitted in join order (lowest join number first) while fewer than
--    max_active hold a live admission AND the event may still have a seat for them:
--    capacity - sold - seats reserved by purchases in flight - admitted fans who have
--    not started buying yet (one seat each) must stay > 0. Seats sold by purchases still
--    in flight count twice (sold and reserved), which only ever admits fewer. Nor more
--    fans than seats inventory has free to buy right now: a seat locked by a purchase the
--    room no longer counts (an abort waiting for orders to answer, a purchase whose
--    outcome is unknown) would only turn each admitted fan away with a conflict, again
--    and again, until it is freed.
-- KEYS[1] room hash, KEYS[2] queue, KEYS[3] active set (user -> deadline ms)
-- ARGV[1] fan key prefix, ARGV[2] capacity, ARGV[3] seats sold (committed), ARGV[4]
-- whether the seat counts are known (1/0), ARGV[5] most fans to admit in this round,
-- ARGV[6] seats free to buy now (AVAILABLE and in no live prepared branch)
-- Returns {expired, waiting, active, purchasing, claims, admitted_through, state,
--          overdue count, overdue user1, ..., then user1, join number1, admission
--          number1, admitted at1, expires at1, user2, ...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local room = KEYS[1]
local state = redis.call('HGET', room, 'state')
if not state then
  return {0, 0, 0, 0, 0, 0, 'NO_ROOM'}
end

local lapsed = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
local expired, overdue = 0, {}
local lease = tonumber(redis.call('HGET', room, 'purchase_lease_ms'))
for _, user in ipairs(lapsed) do
  local fan = ARGV[1] .. user
  if redis.call('HGET', fan, 'state') == 'PURCHASING' then
    -- A purchase is never ended by the clock: it may still be in flight (parked, in
    -- doubt). Looked at again after another lease; meanwhile the service asks the
    -- coordinator's log whether it ended, and releases the slot if it did.
    redis.call('ZADD', KEYS[3], now + lease, user)
    table.insert(overdue, user)
  else
    redis.call('HSET', fan, 'state', 'EXPIRED', 'expired_at', now)
    redis.call('HINCRBY', room, 'expired', 1)
    redis.call('ZREM', KEYS[3], user)
    expired = expired + 1
  end
end

local admitted = {}
if ARGV[4] == '1' then
  redis.call('HSET', room, 'seats_sold', ARGV[3], 'capacity', ARGV[2])
end
if state == 'OPEN' and ARGV[4] == '1' then
  local active = redis.call('ZCARD', KEYS[3])
  local purchasing = tonumber(redis.call('HGET', room, 'purchasing'))
  local reserved = tonumber(redis.call('HGET', room, 'reserved'))
  local slots = tonumber(redis.call('HGET', room, 'max_active')) - active
  local unsold = tonumber(ARGV[2]) - tonumber(ARGV[3]) - reserved
  local seats = math.min(unsold, tonumber(ARGV[6])) - (active - purchasing)
  local n = math.min(slots, seats, tonumber(ARGV[5]))
  if n > 0 then
    local ttl = tonumber(redis.call('HGET', room, 'admission_ttl_ms'))
    local grace = tonumber(redis.call('HGET', room, 'claim_grace_ms') or '0')
    local popped = redis.call('ZPOPMIN', KEYS[2], n)
    for i = 1, #popped, 2 do
      local user = popped[i]
      local number = redis.call('HINCRBY', room, 'admitted', 1)
      local expires = now + ttl
      redis.call('HSET', ARGV[1] .. user, 'state', 'ADMITTED', 'admission_id', 'adm-' .. number,
        'admission_number', number, 'admitted_at', now, 'expires_at', expires)
      redis.call('ZADD', KEYS[3], expires + grace, user)
      redis.call('HSET', room, 'admitted_through', popped[i + 1])
      table.insert(admitted, user)
      table.insert(admitted, popped[i + 1])
      table.insert(admitted, number)
      table.insert(admitted, now)
      table.insert(admitted, expires)
    end
  end
end

local result = {expired, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  tonumber(redis.call('HGET', room, 'purchasing')), tonumber(redis.call('HGET', room, 'claims')),
  tonumber(redis.call('HGET', room, 'admitted_through')), state, #overdue}
for _, user in ipairs(overdue) do
  table.insert(result, user)
end
for _, value in ipairs(admitted) do
  table.insert(result, value)
end
return result
