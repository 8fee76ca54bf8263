-- ARGV: webhook id, prefix. The record of one delivery: {its hash's fields, its history list},
-- or false.
local key = ARGV[2] .. 'd:' .. ARGV[1]
local fields = redis.call('HGETALL', key)
if #fields == 0 then return false end
return {fields, redis.call('LRANGE', ARGV[2] .. 'h:' .. ARGV[1], 0, -1)}
