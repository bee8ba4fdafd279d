-- expect: ok
-- limits: memory_mb=64
-- events: 40
-- within: 60
-- rss-mb: 170
-- 16 MB strings made and dropped at every event: memory freed goes back to the system.
return { key = "global", on = { T = function(s, e)
  s.big = ("xy"):rep(8e6) .. e.seq
  s.len = #s.big
end } }
