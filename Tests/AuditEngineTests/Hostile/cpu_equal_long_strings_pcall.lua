-- expect: CPU time limit of 0.1 s per event exceeded
-- limits: instructions=1e7 seconds=0.1
-- within: 10
-- The CPU time limit, swallowed by pcall: the event still fails.
return { on = { T = function(s, e)
  local a, b = ("x"):rep(1e7), ("x"):rep(1e7)
  pcall(function() for i = 1, 200000 do local _ = a == b end end)
  s.after = true
end } }
