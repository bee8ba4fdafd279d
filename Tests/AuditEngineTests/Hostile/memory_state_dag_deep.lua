-- expect: state too large
-- limits: memory_mb=32
-- events: 1
-- within: 20
-- rss-mb: 200
-- Depth 40: terabytes of JSON asked for; stopped at what the limit leaves.
return { on = { T = function(s, e)
  local t = {}
  for i = 1, 40 do t = { a = t, b = t } end
  s.v = t
end } }
