-- expect: exceeded in next
-- limits: instructions=1e6
-- within: 15
-- next(t, k) keeps one sorted snapshot: alternating two tables sorts one of them again at every call.
return { on = { T = function(s, e)
  local a, b = {}, {}
  for i = 1, 5000 do a[i .. "k"] = i; b[i .. "k"] = i end
  for i = 1, 1e9 do next(a, "1k"); next(b, "1k") end
end } }
