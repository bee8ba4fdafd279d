-- expect: exceeded in next
-- limits: instructions=1e6
-- within: 15
-- next(t) looks at every key for the smallest inside one C call: charged a key each.
return { on = { T = function(s, e)
  local t = {} for i = 1, 5000 do t[i .. "k"] = i end
  local n = 0
  for i = 1, 1e9 do if next(t) then n = n + 1 end end
end } }
