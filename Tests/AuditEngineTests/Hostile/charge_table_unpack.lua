-- expect: exceeded in table.unpack
-- limits: instructions=1e6
-- within: 15
-- table.unpack loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local t = {} for i = 1, 1e5 do t[i] = i end
  for i = 1, 1e9 do table.unpack(t) end
end } }
