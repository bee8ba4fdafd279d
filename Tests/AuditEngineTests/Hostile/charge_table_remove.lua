-- expect: exceeded in table.remove
-- limits: instructions=1e6
-- within: 15
-- table.remove loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local t = {} for i = 1, 2e5 do t[i] = i end
  for i = 1, 1e9 do table.remove(t, 1) end
end } }
