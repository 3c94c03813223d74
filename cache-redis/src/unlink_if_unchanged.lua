-- Unlinks KEYS[1] if its value still has the SHA-1 (lowercase hex) ARGV[1]; answers 1 if
-- it did, 0 if the key is gone, holds another value or is not a string.
--
-- `gc` reads values, judges them, and removes the stale ones with this script, one call
-- per key: a scanner may rewrite an entry between the read and the removal, and that
-- fresh entry must stay. One key per call keeps each call short (the server runs a
-- script without serving anyone else) and lets sharding proxies route it.
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'string' and redis.sha1hex(value) == ARGV[1] then
  redis.call('UNLINK', KEYS[1])
  return 1
end
return 0
