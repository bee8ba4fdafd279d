-- expect: exceeded in string.gmatch
-- limits: instructions=1e6
-- within: 15
-- string.gmatch loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local big = ("x"):rep(1e6)
  for i = 1, 1e9 do for w in big:gmatch("x+y") do end end
end } }
