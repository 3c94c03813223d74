-- Removes the claim KEYS[1] if it still holds the token ARGV[1]; answers 1 if it did, 0
-- if the claim is gone or another owner's (compare-and-delete).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0
