-- Opens the sale of a room in the pre-queue: the pre-queued fans, in the fair order the
-- service computed from the room's seed (see shuffle.rs), take join numbers 1, 2, ...
-- and wait in that order, ahead of every fan who joined after opens_at (their join
-- numbers are higher: each pre-queue join counted in `joined`). Then the room is OPEN.
-- KEYS[1] room hash, KEYS[2] pre-queue, KEYS[3] queue
-- ARGV[1] fan key prefix, ARGV[2] the seed the order was drawn with, ARGV[3..] the
-- pre-queued users in order
-- Returns {'OPENED', placed}, {'EARLY'} before opens_at, {'STALE'} when the pre-queue
-- holds a fan the order lacks (the caller reads it again), {'NOT_PRE_QUEUE'} when the
-- sale is open already.
if redis.call('HGET', KEYS[1], 'state') ~= 'PRE_QUEUE' then
  return {'NOT_PRE_QUEUE'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(redis.call('HGET', KEYS[1], 'opens_at')) then
  return {'EARLY'}
end
local present = 0
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    present = present + 1
  end
end
if present ~= redis.call('ZCARD', KEYS[2]) then
  return {'STALE'}
end
local placed = 0
for i = 3, #ARGV do
  local user = ARGV[i]
  if redis.call('ZSCORE', KEYS[2], user) then
    placed = placed + 1
    redis.call('ZADD', KEYS[3], placed, user)
    redis.call('HSET', ARGV[1] .. user, 'state', 'WAITING', 'seq', placed, 'placed_at', now)
  end
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'OPEN', 'sale_opened_at', now, 'shuffle_seed', ARGV[2],
  'pre_queue_placed', placed)
return {'OPENED', placed}
