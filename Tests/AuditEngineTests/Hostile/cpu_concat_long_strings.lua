-- expect: CPU time limit
-- limits: instructions=1e7
-- within: 10
return { on = { T = function(s, e)
  local a = ("x"):rep(1e7)
  for i = 1, 200000 do local _ = a .. "y" end
end } }
