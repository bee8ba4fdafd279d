-- expect: memory limit of 64 MB exceeded
-- limits: memory_mb=64 instructions=1e9
-- rss-mb: 400
return { on = { T = function(s, e)
  local t = {}
  for i = 1, 1e9 do t[i] = i end
end } }
