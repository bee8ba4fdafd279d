-- expect: exceeded in string.rep
-- limits: instructions=1e6
-- within: 15
-- string.rep loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  
  for i = 1, 1e9 do ("x"):rep(1e6) end
end } }
