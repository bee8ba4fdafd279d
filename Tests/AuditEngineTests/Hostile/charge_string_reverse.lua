-- expect: exceeded in string.reverse
-- limits: instructions=1e6
-- within: 15
-- string.reverse loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local big = ("x"):rep(1e6)
  for i = 1, 1e9 do big:reverse() end
end } }
