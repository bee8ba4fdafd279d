-- expect: a table stored in two places
-- limits: memory_mb=32
-- events: 1
-- within: 20
-- rss-mb: 200
-- Depth 40: terabytes of JSON if written out; refused as a table stored in two places.
return { on = { T = function(s, e)
  local t = {}
  for i = 1, 40 do t = { a = t, b = t } end
  s.v = t
end } }
