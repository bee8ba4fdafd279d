-- expect: CPU time limit of 0.25 s per event exceeded (
-- limits: instructions=1e7
-- within: 10
-- 200,000 comparisons of two equal 10 MB strings: each `==` is one instruction.
return { key = "global", on = { T = function(s, e)
  local a, b = ("x"):rep(1e7), ("x"):rep(1e7)
  local n = 0
  for i = 1, 200000 do if a == b then n = n + 1 end end
  s.n = n
end } }
