-- Opens the room of an event, or changes max_active and admission_ttl of an open one.
-- With opens_at ahead, the room starts in the pre-queue: fans who join wait unordered
-- until the opening (open_sale.lua) places them.
-- KEYS[1] room hash, KEYS[2] the set of rooms
-- ARGV[1] event id, ARGV[2] max_active, ARGV[3] admission ttl (ms), ARGV[4] purchase
-- lease (ms), ARGV[5] capacity, ARGV[6] claim grace (ms): how long past its expiry an
-- unused admission keeps its slot for a purchase received in time and not claimed yet,
-- ARGV[7] when the sale opens (ms; '' for at once), ARGV[8] the shuffle seed ('0': drawn
-- at the opening)
-- Returns 'OK', or 'SALE_OPENED' when opens_at or the seed would change a room whose
-- sale has opened (nothing changes then).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opens_at = tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local state = 'OPEN'
  if opens_at and opens_at > now then
    state = 'PRE_QUEUE'
  end
  redis.call('HSET', KEYS[1], 'state', state, 'opened_at', now, 'joined', 0, 'admitted', 0,
    'admitted_through', 0, 'purchasing', 0, 'reserved', 0, 'claims', 0, 'releases', 0,
    'purchased', 0, 'sold_out', 0, 'expired', 0, 'left', 0, 'max_purchasing_seen', 0,
    'seats_sold', 0, 'shuffle_seed', 0, 'pre_queue_placed', 0)
  if state == 'PRE_QUEUE' then
    redis.call('HSET', KEYS[1], 'opens_at', opens_at, 'requested_seed', ARGV[8])
  end
elseif redis.call('HGET', KEYS[1], 'state') == 'PRE_QUEUE' then
  if opens_at then
    redis.call('HSET', KEYS[1], 'opens_at', math.max(opens_at, now))
  end
  redis.call('HSET', KEYS[1], 'requested_seed', ARGV[8])
else
  local stored = tonumber(redis.call('HGET', KEYS[1], 'opens_at'))
  if (opens_at and opens_at > now and opens_at ~= stored)
      or (ARGV[8] ~= '0' and ARGV[8] ~= redis.call('HGET', KEYS[1], 'shuffle_seed')) then
    return 'SALE_OPENED'
  end
end
redis.call('HSET', KEYS[1], 'event_id', ARGV[1], 'max_active', ARGV[2],
  'admission_ttl_ms', ARGV[3], 'purchase_lease_ms', ARGV[4], 'capacity', ARGV[5],
  'claim_grace_ms', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
return 'OK'
