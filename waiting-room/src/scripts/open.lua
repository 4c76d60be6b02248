-- Opens the room of an event, or changes max_active and admission_ttl of an open one.
-- KEYS[1] room hash, KEYS[2] the set of rooms
-- ARGV[1] event id, ARGV[2] max_active, ARGV[3] admission ttl (ms), ARGV[4] purchase
-- lease (ms), ARGV[5] capacity, ARGV[6] claim grace (ms): how long past its expiry an
-- unused admission keeps its slot for a purchase received in time and not claimed yet
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'OPEN', 'opened_at', now, 'joined', 0, 'admitted', 0,
    'admitted_through', 0, 'purchasing', 0, 'reserved', 0, 'claims', 0, 'releases', 0,
    'purchased', 0, 'sold_out', 0, 'expired', 0, 'left', 0, 'max_purchasing_seen', 0,
    'seats_sold', 0)
end
redis.call('HSET', KEYS[1], 'event_id', ARGV[1], 'max_active', ARGV[2],
  'admission_ttl_ms', ARGV[3], 'purchase_lease_ms', ARGV[4], 'capacity', ARGV[5],
  'claim_grace_ms', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
