-- expect: state too large
-- limits: memory_mb=64 instructions=1e7
-- events: 1
-- within: 20
-- rss-mb: 250
-- One 10 MB string under 1,000 fields: 10 MB in memory, 10 GB of JSON.
return { key = "global", on = { T = function(s, e)
  local big = ("x"):rep(1e7)
  for i = 1, 1000 do s["k" .. i] = big end
end } }
