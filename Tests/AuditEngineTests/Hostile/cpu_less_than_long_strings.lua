-- expect: CPU time limit
-- limits: instructions=1e7
-- within: 10
return { on = { T = function(s, e)
  local a, b = ("x"):rep(1e7), ("x"):rep(1e7)
  for i = 1, 200000 do local _ = a < b end
end } }
