-- Takes a fan out of the room: a waiting fan loses their place, an admitted fan gives
-- the slot back. Refused while a purchase with the fan's admission is in flight.
-- KEYS[1] room hash, KEYS[2] queue, KEYS[3] active set, KEYS[4] the fan's hash,
-- KEYS[5] pre-queue
-- ARGV[1] user id
-- Returns the state the fan left from ('' when not in the room).
local state = redis.call('HGET', KEYS[4], 'state')
if not state then
  return ''
end
if state == 'PURCHASING' then
  return state
end
if state == 'WAITING' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  if redis.call('HGET', KEYS[1], 'state') == 'SOLD_OUT' then
    state = 'SOLD_OUT'
  end
elseif state == 'PRE_QUEUE' then
  redis.call('ZREM', KEYS[5], ARGV[1])
elseif state == 'ADMITTED' then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('DEL', KEYS[4])
redis.call('HINCRBY', KEYS[1], 'left', 1)
return state
