-- expect: state too large
-- limits: memory_mb=16
-- events: 3
-- within: 20
-- rss-mb: 150
-- A few KB of shared tables is 2^24 leaves of JSON: the JSON written out counts against the memory limit.
return { key = "global", on = { T = function(s, e)
  local t = { "x" }
  for i = 1, 24 do t = { t, t } end
  s.v = t
end } }
