-- expect: exceeded in table.concat
-- limits: instructions=1e6
-- within: 15
-- table.concat loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local parts = {} for i = 1, 1000 do parts[i] = ("x"):rep(1000) end
  for i = 1, 1e9 do table.concat(parts) end
end } }
