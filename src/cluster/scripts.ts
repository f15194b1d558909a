/**
 * The chat's Lua scripts: every change a node makes to the shared chat is one script, so it is atomic
 * (Redis runs a script alone) and costs one round trip, pipelined with everything else the node sends.
 *
 * Keys, under a prefix P (`wschat:`), computed inside the scripts (one Redis, not Redis Cluster):
 *
 *   P s:<stream>   hash {epoch, top}: the stream's epoch and its latest offset (HINCRBY gives the next)
 *   P l:<stream>   Redis stream: entry <offset>-0 holds the stored JSON, trimmed to HISTORY_SIZE (MAXLEN)
 *   P c:<stream>   zset "<sender key>\n<cid>" -> offset, for the messages still held: de-duplication
 *   P pub          channel: every stored message, as its JSON, in the order Redis stored them
 *   P ctl:<node>   channel: "moved|ended\n<gen>\n<token hash>\n<key>": a node's session was taken over
 *                  by another node, or ended (by the node itself, or by one reaping it)
 *   P u:<name>     hash {name, jname (as JSON), token (SHA-256), node, v2, since, gen}: a session
 *   P r:<name>     zset room -> join order: the session's rooms
 *   P users        zset name key -> join order: GET /clients
 *   P rooms        zset room -> +inf while it has members (the lobby always), else when it emptied
 *   P order        zset room -> creation order: GET /rooms
 *   P m:<room>     zset name key -> join order: the room's members
 *   P n:<node>     set of the name keys a node holds
 *   P nodes        set of node ids; P lease:<node> (PX NODE_TTL_MS / 2) says one is alive
 *   P reap:<node>  who is ending a dead node's sessions; P boot: changes when Redis lost its data
 *   P seq          the counter behind every "order" above
 *
 * A stream's epoch is made by the script that first needs it, from a random seed the node sends
 * (scripts must be deterministic), so every node agrees on it.
 */
import { RedisScript } from '../redis';

const COMMON = String.raw`
local P = ARGV[1]
local INF = '+inf'
local function k(kind, name) return P .. kind .. ':' .. name end
local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
-- 48 bits of a SHA-1 as 8 base64url characters: the same shape as a single process's epochs.
local function b64(hex)
  local out = ''
  for i = 1, 12, 3 do
    local v = tonumber(string.sub(hex, i, i + 2), 16)
    local hi, lo = math.floor(v / 64) + 1, v % 64 + 1
    out = out .. string.sub(B64, hi, hi) .. string.sub(B64, lo, lo)
  end
  return out
end
local function epoch_of(s, seed)
  local e = redis.call('HGET', k('s', s), 'epoch')
  if not e then
    e = b64(redis.sha1hex(seed .. '/' .. s))
    redis.call('HSET', k('s', s), 'epoch', e, 'top', 0)
  end
  return e
end
local function top_of(s) return tonumber(redis.call('HGET', k('s', s), 'top') or '0') end
local function oldest_of(s, top)
  local r = redis.call('XRANGE', k('l', s), '-', '+', 'COUNT', 1)
  if #r == 0 then return top + 1 end
  return tonumber(string.match(r[1][1], '^(%d+)'))
end
-- Stores head .. offset .. epoch (unless the sender's cid is still held); returns offset, epoch.
local function append(s, head, cid, size, seed)
  local e = epoch_of(s, seed)
  if cid ~= '' then
    local seen = redis.call('ZSCORE', k('c', s), cid)
    if seen then return tonumber(seen), e, false end
  end
  local o = redis.call('HINCRBY', k('s', s), 'top', 1)
  local json = head .. o .. ',"epoch":"' .. e .. '"}'
  redis.call('XADD', k('l', s), 'MAXLEN', size, o .. '-0', 'm', json)
  if cid ~= '' then
    redis.call('ZADD', k('c', s), o, cid)
    redis.call('ZREMRANGEBYSCORE', k('c', s), '-inf', o - size)
  end
  redis.call('PUBLISH', P .. 'pub', json)
  return o, e, true
end
-- The JSON of the held entries with offsets in (after, upto], oldest first.
local function range(s, after, upto, count)
  local out = {}
  if upto <= after or count <= 0 then return out end
  local r = redis.call('XRANGE', k('l', s), '(' .. after .. '-0', upto .. '-0', 'COUNT', count)
  for i = 1, #r do out[i] = r[i][2][2] end
  return out
end
-- The last count entries up to upto, oldest first.
local function latest(s, upto, count)
  local out = {}
  if upto <= 0 or count <= 0 then return out end
  local r = redis.call('XREVRANGE', k('l', s), upto .. '-0', '-', 'COUNT', count)
  for i = #r, 1, -1 do out[#out + 1] = r[i][2][2] end
  return out
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function owner(key) return redis.call('HGET', k('u', key), 'node') end
local function drop_stream(s) redis.call('DEL', k('s', s), k('l', s), k('c', s)) end
-- Makes key a member of room, creating the room (an empty one makes way at maxrooms); false: no room.
local function enter(key, room, maxrooms)
  if not redis.call('ZSCORE', P .. 'rooms', room) then
    if redis.call('ZCARD', P .. 'rooms') >= maxrooms then
      local empty = redis.call('ZRANGEBYSCORE', P .. 'rooms', '-inf', '(' .. INF, 'LIMIT', 0, 1)
      if #empty == 0 then return false end
      drop_stream(empty[1])
      redis.call('DEL', k('m', empty[1]))
      redis.call('ZREM', P .. 'rooms', empty[1])
      redis.call('ZREM', P .. 'order', empty[1])
    end
    redis.call('ZADD', P .. 'order', redis.call('INCR', P .. 'seq'), room)
  end
  redis.call('ZADD', P .. 'rooms', INF, room)
  local seq = redis.call('INCR', P .. 'seq')
  redis.call('ZADD', k('m', room), seq, key)
  redis.call('ZADD', k('r', key), seq, room)
  return true
end
local function leave_room(key, room)
  redis.call('ZREM', k('m', room), key)
  redis.call('ZREM', k('r', key), room)
  if room ~= 'lobby' and redis.call('ZCARD', k('m', room)) == 0 then
    redis.call('ZADD', P .. 'rooms', now_ms(), room)
  end
end
-- What a member gets on (re)joining a stream: {epoch, top, recovered, entries}.
local function backlog(s, at_epoch, at_offset, v2, onjoin, size, seed)
  local e = epoch_of(s, seed)
  local top = top_of(s)
  if at_epoch == e and at_offset <= top and at_offset >= oldest_of(s, top) - 1 then
    return {s, e, top, 1, range(s, at_offset, top, size)}
  end
  if v2 then return {s, e, top, 0, latest(s, top, onjoin)} end
  return {s, e, top, 0, {}}
end
`;

function script(body: string): RedisScript {
  return new RedisScript(COMMON + body);
}

/** The lobby exists, and so does the boot mark; returns the mark (a new one means Redis lost its data). */
export const INIT = script(String.raw`
local seed = ARGV[2]
if not redis.call('ZSCORE', P .. 'order', 'lobby') then
  redis.call('ZADD', P .. 'order', redis.call('INCR', P .. 'seq'), 'lobby')
end
redis.call('ZADD', P .. 'rooms', INF, 'lobby')
epoch_of('lobby', seed)
redis.call('SET', P .. 'boot', seed, 'NX')
return redis.call('GET', P .. 'boot')
`);

/**
 * hello: claims a name, or takes a session over with its token, and reads what the client missed.
 * ARGV: P key name jname given-token-hash new-token-hash node v2 since size onjoin maxrooms maxper seed
 *       then per stream the client named: stream epoch offset (epoch '' when it gave no position)
 *       then per room a new session joins (lobby first): room head-of-its-join-notice (after '--')
 * Returns {'taken'} or {mode, previous node, since, gen, {{stream, epoch, top, recovered, {json}}...}, name}.
 */
export const HELLO = script(String.raw`
local key, name, jname, given, fresh, node = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local v2 = ARGV[8] == '1'
local since, size, onjoin = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local maxrooms, maxper, seed = tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14]
local at, joins, i = {}, {}, 15
while ARGV[i] ~= '--' do at[ARGV[i]] = {ARGV[i + 1], tonumber(ARGV[i + 2])}; i = i + 3 end
i = i + 1
while ARGV[i] do joins[#joins + 1] = {ARGV[i], ARGV[i + 1]}; i = i + 2 end
local u = k('u', key)
local function read(s)
  local p = at[s] or {'', 0}
  return backlog(s, p[1], p[2], v2, onjoin, size, seed)
end
local prev = redis.call('HGET', u, 'node')
if prev then
  if given == '' or redis.call('HGET', u, 'token') ~= given then return {'taken'} end
  local gen = redis.call('HINCRBY', u, 'gen', 1)
  redis.call('HSET', u, 'node', node)
  redis.call('SREM', k('n', prev), key)
  redis.call('SADD', k('n', node), key)
  if prev ~= node then redis.call('PUBLISH', k('ctl', prev), 'moved\n' .. gen .. '\n' .. given .. '\n' .. key) end
  local streams = {}
  for _, room in ipairs(redis.call('ZRANGE', k('r', key), 0, -1)) do streams[#streams + 1] = read(room) end
  streams[#streams + 1] = read('@' .. key)
  return {'resume', prev, redis.call('HGET', u, 'since'), gen, streams, redis.call('HGET', u, 'name')}
end
redis.call('HSET', u, 'name', name, 'jname', jname, 'token', fresh, 'node', node,
  'v2', ARGV[8], 'since', since, 'gen', 1)
redis.call('ZADD', P .. 'users', redis.call('INCR', P .. 'seq'), key)
redis.call('SADD', k('n', node), key)
drop_stream('@' .. key)
local streams, joined = {}, {}
for _, j in ipairs(joins) do
  if redis.call('ZCARD', k('r', key)) >= maxper or not enter(key, j[1], maxrooms) then break end
  streams[#streams + 1] = read(j[1])
  joined[#joined + 1] = j
end
streams[#streams + 1] = read('@' .. key)
for _, j in ipairs(joined) do append(j[1], j[2], '', size, seed) end
return {'new', node, since, 1, streams, name}
`);

/** A chat message. ARGV: P key node room head cid size seed. {-1}: not the owner; {-2}: not in the room. */
export const SAY = script(String.raw`
local key, node, room = ARGV[2], ARGV[3], ARGV[4]
if owner(key) ~= node then return {-1} end
if not redis.call('ZSCORE', k('r', key), room) then return {-2} end
local o, e = append(room, ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8])
return {o, e}
`);

/**
 * A private message, stored in the sender's inbox and the addressee's (once for a note to oneself). The
 * addressee's name as they typed it goes between `a` and `b`. ARGV: P key node to a b-copy b-to cid size
 * seed. Returns the copy's {offset, epoch}; {-1}: not the owner; {-3}: the addressee is not online.
 */
export const PRIVATE = script(String.raw`
local key, node, to = ARGV[2], ARGV[3], ARGV[4]
if owner(key) ~= node then return {-1} end
local jname = redis.call('HGET', k('u', to), 'jname')
if not jname then return {-3} end
local size, seed = tonumber(ARGV[9]), ARGV[10]
local o, e, new = append('@' .. key, ARGV[5] .. jname .. ARGV[6], ARGV[8], size, seed)
if new and to ~= key then append('@' .. to, ARGV[5] .. jname .. ARGV[7], '', size, seed) end
return {o, e}
`);

/**
 * join: ARGV: P key node room head size onjoin maxrooms maxper seed. Returns {1, epoch, top, {json}}
 * (the latest history, then the join notice is stored); {-1} not the owner, {-2} already in it,
 * {-4} too many rooms for the client, {-5} too many rooms on the server.
 */
export const JOIN = script(String.raw`
local key, node, room = ARGV[2], ARGV[3], ARGV[4]
local size, onjoin, maxrooms, maxper, seed = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]),
  tonumber(ARGV[9]), ARGV[10]
if owner(key) ~= node then return {-1} end
if redis.call('ZSCORE', k('r', key), room) then return {-2} end
if redis.call('ZCARD', k('r', key)) >= maxper then return {-4} end
if not enter(key, room, maxrooms) then return {-5} end
local e = epoch_of(room, seed)
local top = top_of(room)
local history = latest(room, top, onjoin)
append(room, ARGV[5], '', size, seed)
return {1, e, top, history}
`);

/** leave: ARGV: P key node room head size seed. {offset}; {-1} not the owner, {-2} not in the room. */
export const LEAVE = script(String.raw`
local key, node, room = ARGV[2], ARGV[3], ARGV[4]
if owner(key) ~= node then return {-1} end
if not redis.call('ZSCORE', k('r', key), room) then return {-2} end
leave_room(key, room)
local o = append(room, ARGV[5], '', tonumber(ARGV[6]), ARGV[7])
return {o}
`);

/**
 * A session ends for good: its rooms hear it leave, its name is free, its inbox is gone. Only if `node`
 * still holds it with this token: so a session is ended once, by its node or by the one reaping it.
 * ARGV: P key node token size seed then room head pairs, for the rooms the caller believes it is in.
 * {'ended'}; {'gone'}: not held by that node (any more); {'rooms', ...}: its rooms are these.
 */
export const END = script(String.raw`
local key, node, token, size, seed = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local u = k('u', key)
if owner(key) ~= node or redis.call('HGET', u, 'token') ~= token then return {'gone'} end
local rooms = redis.call('ZRANGE', k('r', key), 0, -1)
local given = {}
for i = 7, #ARGV, 2 do given[#given + 1] = ARGV[i] end
local same = #given == #rooms
for i = 1, #rooms do if given[i] ~= rooms[i] then same = false end end
if not same then return {'rooms', rooms} end
for i = 7, #ARGV, 2 do
  leave_room(key, ARGV[i])
  append(ARGV[i], ARGV[i + 1], '', size, seed)
end
local gen = redis.call('HGET', u, 'gen')
redis.call('DEL', u, k('r', key))
drop_stream('@' .. key)
redis.call('ZREM', P .. 'users', key)
redis.call('SREM', k('n', node), key)
redis.call('PUBLISH', k('ctl', node), 'ended\n' .. gen .. '\n' .. token .. '\n' .. key)
return {'ended'}
`);

/**
 * Where a node's cache of a stream stands against Redis: ARGV: P stream epoch after size seed.
 * {epoch, top, {json}}: the entries after `after` when the epoch is the one given (at most size).
 */
export const SYNC = script(String.raw`
local s, known, after, size = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local e = epoch_of(s, ARGV[6])
local top = top_of(s)
if e ~= known then return {e, top, {}} end
return {e, top, range(s, after, top, size)}
`);

/**
 * A page of a stream: ARGV: P stream room-or-'' after before limit clamp. after: the limit entries after
 * it; else the limit before `before` (default: the latest), not before the oldest held when clamp.
 * Returns {epoch, top, oldest, first, {json}}, or {} when the room does not exist.
 */
export const PAGE = script(String.raw`
local s, room, limit = ARGV[2], ARGV[3], tonumber(ARGV[6])
if room ~= '' and not redis.call('ZSCORE', P .. 'order', room) then return {} end
if redis.call('EXISTS', k('s', s)) == 0 then return {} end
local e, top = redis.call('HGET', k('s', s), 'epoch'), top_of(s)
local oldest = oldest_of(s, top)
local first, last
if ARGV[4] ~= '' then
  first = tonumber(ARGV[4]) + 1
  last = tonumber(ARGV[4]) + limit
else
  local before = top + 1
  if ARGV[5] ~= '' then before = math.min(tonumber(ARGV[5]), top + 1) end
  first, last = before - limit, before - 1
  if ARGV[7] == '1' then first = math.max(first, oldest) end
end
return {e, top, oldest, first, range(s, math.max(first, oldest) - 1, math.min(last, top), limit)}
`);

/** GET /clients: ARGV: P room-or-''. {1, name, since, name, since...} in join order; {0}: no such room. */
export const ROSTER = script(String.raw`
local room = ARGV[2]
local keys
if room == '' then keys = redis.call('ZRANGE', P .. 'users', 0, -1)
else
  if not redis.call('ZSCORE', P .. 'order', room) then return {0} end
  keys = redis.call('ZRANGE', k('m', room), 0, -1)
end
local out = {1}
for _, key in ipairs(keys) do
  local u = redis.call('HMGET', k('u', key), 'name', 'since')
  if u[1] then out[#out + 1] = u[1]; out[#out + 1] = u[2] end
end
return out
`);

/** GET /rooms: {room, members, epoch, top, ...} in creation order. ARGV: P. */
export const ROOMS = script(String.raw`
local out = {}
for _, room in ipairs(redis.call('ZRANGE', P .. 'order', 0, -1)) do
  local m = redis.call('HMGET', k('s', room), 'epoch', 'top')
  out[#out + 1] = room
  out[#out + 1] = redis.call('ZCARD', k('m', room))
  out[#out + 1] = m[1] or ''
  out[#out + 1] = tonumber(m[2] or '0')
end
return out
`);

/**
 * A node's lease: ARGV: P node ttl. Renews it and returns 1, or 0 when it had lapsed (or is new): then
 * other nodes may have ended its sessions.
 */
export const HEARTBEAT = script(String.raw`
local node, ttl = ARGV[2], ARGV[3]
local had = redis.call('SET', k('lease', node), '1', 'PX', ttl, 'GET')
redis.call('SADD', P .. 'nodes', node)
if had then return 1 end
return 0
`);

/**
 * Which of a node's sessions Redis still gives it: ARGV: P node then key gen pairs. Per key: 'ok', 'moved'
 * (another node took it over), or 'gone' (ended by another node, or lost with Redis's data).
 */
export const VERIFY = script(String.raw`
local node, out = ARGV[2], {}
for i = 3, #ARGV, 2 do
  local u = redis.call('HMGET', k('u', ARGV[i]), 'node', 'gen')
  if not u[1] then out[#out + 1] = 'gone'
  elseif u[1] == node and u[2] == ARGV[i + 1] then out[#out + 1] = 'ok'
  else out[#out + 1] = 'moved' end
end
return out
`);

/**
 * Redis lost its data while a node kept its clients: their sessions are written again, rooms included,
 * without notices (nobody left). ARGV: P key name jname token node v2 since gen maxrooms seed then rooms.
 * {'ok'}, or {'taken'} when someone else claimed the name meanwhile.
 */
export const RESTORE = script(String.raw`
local key, node = ARGV[2], ARGV[6]
local u = k('u', key)
local held = owner(key)
if held then
  if held == node and redis.call('HGET', u, 'token') == ARGV[5] then return {'ok'} end
  return {'taken'}
end
redis.call('HSET', u, 'name', ARGV[3], 'jname', ARGV[4], 'token', ARGV[5], 'node', node, 'v2', ARGV[7],
  'since', ARGV[8], 'gen', ARGV[9])
redis.call('ZADD', P .. 'users', redis.call('INCR', P .. 'seq'), key)
redis.call('SADD', k('n', node), key)
for i = 12, #ARGV do
  enter(key, ARGV[i], tonumber(ARGV[10]))
  epoch_of(ARGV[i], ARGV[11])
end
epoch_of('@' .. key, ARGV[11])
return {'ok'}
`);

export const ALL_SCRIPTS: readonly RedisScript[] = [
  INIT, HELLO, SAY, PRIVATE, JOIN, LEAVE, END, SYNC, PAGE, ROSTER, ROOMS, HEARTBEAT, VERIFY, RESTORE,
];
