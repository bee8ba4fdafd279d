-- expect: instruction budget of 1000 instructions exceeded
-- limits: instructions=1000
-- within: 10
return { on = { T = function(s, e)
  xpcall(function() while true do end end, function() while true do end end)
end } }
