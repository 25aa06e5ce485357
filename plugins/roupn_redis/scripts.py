"""The Lua scripts that change rooms in Redis, each atomically with its event.

Each script that changes a room raises the room's ``version`` by one and publishes
the event on the room's channel in the same step, so every subscriber receives the
changes in the order Redis made them.

Keys, under a prefix ``P``:

- ``P:room:CODE``: hash of the room: ``creator``, ``secret`` (SHA-256 of the
  creator secret, hex), ``max``, ``created``, ``claimed`` (1 once the creator
  joined), ``version`` and ``seq`` (the last join number).
- ``P:room:CODE:members``: hash from user id to ``"SEQ VERIFIED SINCE NODE"``.
- ``P:rooms``: sorted set of room codes, scored by the time an unclaimed room
  expires, or ``inf`` once its creator joined.
- ``P:node:NODE``: a relay process's heartbeat, which expires after the node
  timeout.
- ``P:node:NODE:members``: set of the ``"CODE USER"`` pairs that process serves.
- ``P:nodes``: set of every node id.

NOTE: the scripts build the key of a member's node set from the prefix rather
than receive it in KEYS, which a Redis Cluster would reject. One Redis server
(with replicas) is what these scripts support.
"""

from __future__ import annotations

__all__ = ["CLOSE", "CREATE", "JOIN", "LEAVE", "SNAPSHOT", "VERIFY"]

# KEYS: rooms, room. ARGV: code, creator, secret hash, max users, now (s),
# unclaimed timeout (ms), max rooms (0 for no limit).
CREATE = """
local now = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local max_rooms = tonumber(ARGV[7])
if max_rooms > 0 and redis.call('ZCARD', KEYS[1]) >= max_rooms then
  return 'room_limit'
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'taken'
end
redis.call('HSET', KEYS[2], 'creator', ARGV[2], 'secret', ARGV[3], 'max', ARGV[4],
  'created', ARGV[5], 'claimed', '0', 'version', '0', 'seq', '0')
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]) / 1000, ARGV[1])
return 'ok'
"""

# KEYS: room, members, rooms, node members. ARGV: code, new user id, secret hash
# ('' for a joiner), node id, now (s), max pending (0 for no limit), channel.
# NOTE: Lua compares the hashes of creator secrets with ==, which is not
# constant-time as hmac.compare_digest is on one process. The difference is
# nanoseconds inside Redis, but no test shows that a client cannot observe it.
JOIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'refused', 'room_not_found'}
end
local room = redis.call('HMGET', KEYS[1], 'creator', 'secret', 'max', 'claimed')
local is_creator = 0
if ARGV[3] ~= '' then
  if ARGV[3] ~= room[2] then
    return {'refused', 'invalid_creator_secret'}
  end
  if room[4] == '1' then
    return {'refused', 'creator_already_joined'}
  end
  is_creator = 1
elseif room[4] ~= '1' then
  return {'refused', 'room_not_found'}
end
if redis.call('HLEN', KEYS[2]) >= tonumber(room[3]) then
  return {'refused', 'room_full'}
end
local max_pending = tonumber(ARGV[6])
if is_creator == 0 and max_pending > 0 then
  local pending = 0
  for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
    if string.match(value, '^%S+ 0 ') then
      pending = pending + 1
    end
  end
  if pending >= max_pending then
    return {'refused', 'too_many_pending'}
  end
end
local user = ARGV[2]
if is_creator == 1 then
  user = room[1]
end
if redis.call('HEXISTS', KEYS[2], user) == 1 then
  return {'retry', user}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[2], user,
  seq .. ' ' .. is_creator .. ' ' .. ARGV[5] .. ' ' .. ARGV[4])
if is_creator == 1 then
  redis.call('HSET', KEYS[1], 'claimed', '1')
  redis.call('PERSIST', KEYS[1])
  redis.call('ZADD', KEYS[3], 'inf', ARGV[1])
end
redis.call('SADD', KEYS[4], ARGV[1] .. ' ' .. user)
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[7], cjson.encode({k = 'join', v = version, u = user,
  c = is_creator, t = tonumber(ARGV[5])}))
return {'ok', user}
"""

# Removes every member from its node's set, then the room; used by LEAVE and CLOSE.
_REMOVE_ROOM = """
local function remove_room(room_key, members_key, rooms_key, code, prefix)
  local members = redis.call('HGETALL', members_key)
  for i = 1, #members, 2 do
    local node = string.match(members[i + 1], '(%S+)$')
    redis.call('SREM', prefix .. ':node:' .. node .. ':members',
      code .. ' ' .. members[i])
  end
  redis.call('DEL', room_key, members_key)
  redis.call('ZREM', rooms_key, code)
end
"""

# KEYS: room, members, rooms. ARGV: code, user id, reason, close code, channel,
# prefix. Returns 1 if the user was a member, else 0.
LEAVE = (
    _REMOVE_ROOM
    + """
local value = redis.call('HGET', KEYS[2], ARGV[2])
if not value then
  return 0
end
local creator = redis.call('HGET', KEYS[1], 'creator')
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
if ARGV[2] == creator then
  remove_room(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[6])
else
  local node = string.match(value, '(%S+)$')
  redis.call('SREM', ARGV[6] .. ':node:' .. node .. ':members',
    ARGV[1] .. ' ' .. ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
redis.call('PUBLISH', ARGV[5], cjson.encode({k = 'left', v = version, u = ARGV[2],
  r = ARGV[3], x = tonumber(ARGV[4])}))
return 1
"""
)

# KEYS: room, members, rooms. ARGV: code, reason, channel, prefix.
CLOSE = (
    _REMOVE_ROOM
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
remove_room(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[4])
redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'closed', v = version,
  r = ARGV[2]}))
return 1
"""
)

# KEYS: room, members. ARGV: user id, the stamped _UV frame, channel.
VERIFY = """
local value = redis.call('HGET', KEYS[2], ARGV[1])
if not value then
  return 0
end
local seq, rest = string.match(value, '^(%S+) %S+ (.*)$')
redis.call('HSET', KEYS[2], ARGV[1], seq .. ' 1 ' .. rest)
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[3],
  cjson.encode({k = 'verified', v = version, u = ARGV[1]}) .. '\\n' .. ARGV[2])
return 1
"""

# KEYS: room, members. Returns nil, or creator, max, created, claimed, version,
# then user id and member value pairs.
SNAPSHOT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local result = redis.call('HMGET', KEYS[1], 'creator', 'max', 'created', 'claimed',
  'version')
local members = redis.call('HGETALL', KEYS[2])
for i = 1, #members do
  result[#result + 1] = members[i]
end
return result
"""
