-- expect: memory limit of 16 MB exceeded
-- limits: memory_mb=16 instructions=1e9
-- within: 10
return { on = { T = function(s, e)
  xpcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end, function(m) while true do end end)
  while true do end
end } }
