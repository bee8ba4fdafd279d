-- expect: state too large
-- limits: memory_mb=32 instructions=1e7
-- events: 1
-- within: 20
-- rss-mb: 200
-- Control characters are written as \u00XX: 6 bytes of JSON for one of memory.
return { key = "global", on = { T = function(s, e)
  local c = ("\1"):rep(1e6)
  for i = 1, 8 do s["k" .. i] = c end
end } }
