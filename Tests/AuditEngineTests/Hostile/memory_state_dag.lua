-- expect: a table stored in two places
-- limits: memory_mb=16
-- events: 3
-- within: 20
-- rss-mb: 150
-- A few KB of shared tables would be 2^24 leaves of JSON: refused as a table stored in two places when it is
-- written out, before its JSON is (the check after each event counts a shared table once for each place, so
-- the state is large and left to that; what escapes it counts against the memory limit: state too large).
return { key = "global", on = { T = function(s, e)
  local t = { "x" }
  for i = 1, 24 do t = { t, t } end
  s.v = t
end } }
