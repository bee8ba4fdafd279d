-- expect: exceeded in table.insert
-- limits: instructions=1e6
-- within: 15
-- table.insert loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local t = {} for i = 1, 1e5 do t[i] = i end
  for i = 1, 1e9 do table.insert(t, 1, 0) end
end } }
