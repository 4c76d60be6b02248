-- Declares the room sold out, but only if no purchase was in flight at any moment since
-- the caller read `claims` (before it asked inventory for the seat counts): then the
-- counts it read are final. Waiting fans become SOLD_OUT (their records say WAITING;
-- a WAITING fan of a sold-out room reads as SOLD_OUT).
-- KEYS[1] room hash, KEYS[2] queue
-- ARGV[1] the room's claims counter as the caller read it before asking inventory
-- Returns 1 when declared, 0 otherwise.
if redis.call('HGET', KEYS[1], 'state') ~= 'OPEN' then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'purchasing')) ~= 0
    or redis.call('HGET', KEYS[1], 'claims') ~= ARGV[1] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', 'SOLD_OUT', 'sold_out_at', now)
redis.call('HINCRBY', KEYS[1], 'sold_out', redis.call('ZCARD', KEYS[2]))
redis.call('DEL', KEYS[2])
return 1
