-- expect: instruction budget
-- limits: instructions=1e6
-- within: 15
-- string.rep loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  
  for i = 1, 1e9 do (""):rep(1e7) end
end } }
