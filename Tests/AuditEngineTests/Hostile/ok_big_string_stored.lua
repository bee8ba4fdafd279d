-- expect: ok
-- events: 1
-- within: 20
-- A 10 MB string in state is allowed (docs/projections.md).
return { on = { T = function(s, e)
  s.big = ("x"):rep(1e7)
end } }
