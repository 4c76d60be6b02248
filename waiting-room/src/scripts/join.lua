-- Puts a fan in the queue, or returns the place they already have (a refreshed browser
-- keeps its place). Join numbers come from the room's counter, so the queue (a sorted
-- set scored by join number) is in join order and ZRANK is the position, O(log n).
-- Before the sale opens (state PRE_QUEUE, now < opens_at) a new fan goes to the
-- pre-queue instead, without a join number: the opening gives the pre-queue numbers 1, 2,
-- ... in a fair random order (open_sale.lua). The counter counts pre-queue joins too, so
-- a fan who joins after opens_at, even before the opening has run, is numbered after
-- every pre-queued fan.
-- KEYS[1] room hash, KEYS[2] queue, KEYS[3] the fan's hash, KEYS[4] pre-queue
-- ARGV[1] user id, ARGV[2] how long a fan record is kept (ms)
-- Returns {state, join number, rank or -1, joined at ms}, or {'NO_ROOM'}. While the
-- pre-queue waits to be placed, a queued fan's rank counts it.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NO_ROOM'}
end
local room_state = redis.call('HGET', KEYS[1], 'state')
local state = redis.call('HGET', KEYS[3], 'state')
local ahead = 0
if room_state == 'PRE_QUEUE' then
  ahead = redis.call('ZCARD', KEYS[4])
end
if state then
  local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
  if state == 'WAITING' and room_state == 'SOLD_OUT' then
    state = 'SOLD_OUT'
  end
  if rank then
    rank = rank + ahead
  end
  return {state, redis.call('HGET', KEYS[3], 'seq') or 0, rank or -1,
    redis.call('HGET', KEYS[3], 'joined_at')}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', KEYS[1], 'joined', 1)
if room_state == 'SOLD_OUT' then
  redis.call('HSET', KEYS[3], 'state', 'SOLD_OUT', 'seq', seq, 'joined_at', now)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'sold_out', 1)
  return {'SOLD_OUT', seq, -1, now}
end
if room_state == 'PRE_QUEUE' and now < tonumber(redis.call('HGET', KEYS[1], 'opens_at')) then
  redis.call('ZADD', KEYS[4], seq, ARGV[1])
  redis.call('HSET', KEYS[3], 'state', 'PRE_QUEUE', 'joined_at', now)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  return {'PRE_QUEUE', 0, -1, now}
end
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('HSET', KEYS[3], 'state', 'WAITING', 'seq', seq, 'joined_at', now)
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return {'WAITING', seq, redis.call('ZRANK', KEYS[2], ARGV[1]) + ahead, now}
