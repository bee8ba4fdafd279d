-- expect: exceeded in pairs
-- limits: instructions=1e6
-- within: 15
-- A pairs iterator passes over the keys removed since it was made: each call from the start passes them all again.
return { on = { T = function(s, e)
  local t = {} for i = 1, 5000 do t[i] = i end
  local step = pairs(t)
  for i = 1, 4999 do t[i] = nil end
  for i = 1, 1e9 do step(t, nil) end
end } }
