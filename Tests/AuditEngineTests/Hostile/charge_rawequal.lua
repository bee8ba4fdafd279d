-- expect: exceeded in rawequal
-- limits: instructions=1e6
-- within: 15
-- rawequal loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local a, b = ("x"):rep(1e6), ("x"):rep(1e6)
  for i = 1, 1e9 do rawequal(a, b) end
end } }
