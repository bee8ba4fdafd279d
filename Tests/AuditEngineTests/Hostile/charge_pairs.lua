-- expect: exceeded in pairs
-- limits: instructions=1e6
-- within: 15
-- pairs sorts every key of the table inside one C call: charged a key each and n log2 n for the sort.
return { on = { T = function(s, e)
  local t = {} for i = 1, 20000 do t[i .. "k"] = i end
  for i = 1, 1e9 do local f = pairs(t) end
end } }
