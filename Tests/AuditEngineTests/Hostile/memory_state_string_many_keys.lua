-- expect: state too large
-- limits: memory_mb=64
-- events: 300
-- within: 30
-- rss-mb: 250
-- One 10 MB string (made at load) in the state of 300 keys: each state is 10 MB of JSON,
-- and the states changed since the last checkpoint are written out together.
local big = ("x"):rep(1e7)
return { key = function(e) return "k" .. e.data.n end, on = { T = function(s, e)
  s.v = big
end } }
