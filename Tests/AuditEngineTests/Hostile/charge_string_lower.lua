-- expect: exceeded in string.lower
-- limits: instructions=1e6
-- within: 15
-- string.lower loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local big = ("X"):rep(1e6)
  for i = 1, 1e9 do big:lower() end
end } }
