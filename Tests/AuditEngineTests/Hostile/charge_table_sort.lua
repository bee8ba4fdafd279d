-- expect: exceeded in table.sort
-- limits: instructions=1e6
-- within: 15
-- table.sort loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local t = {} for i = 1, 1e5 do t[i] = -i end
  for i = 1, 1e9 do table.sort(t) end
end } }
