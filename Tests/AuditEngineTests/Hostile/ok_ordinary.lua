-- expect: ok
-- A projection using the libraries as ordinary projections do: nothing may stop it.
return { on = { T = function(s, e)
  s.n = (s.n or 0) + 1
  s.label = string.format("%s-%05.1f", e.stream, e.data.x)
  s.words = select(2, ("a b c " .. e.data.n):gsub("%w+", "%0"))
  s.up = ("abc"):upper() .. ("x"):rep(3, ",")
  s.list = table.concat({ 1, 2, e.data.n }, ",")
end } }
