-- expect: instruction budget of 100000 instructions exceeded
-- limits: instructions=1e5
-- within: 10
-- An ordinary error reaches the handler (metered): the handler's own loop is stopped.
return { on = { T = function(s, e)
  xpcall(function() error("ordinary") end, function(m) while true do end end)
end } }
