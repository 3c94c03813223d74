-- Sets the expiry of the claim KEYS[1] to ARGV[2] milliseconds if it still holds the
-- token ARGV[1]; answers 1 if it did, 0 if the claim is gone or another owner's.
--
-- A claim that ran out and was taken over holds the new owner's token, which its old
-- owner must not extend. One key per call, so sharding proxies and clusters route it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
