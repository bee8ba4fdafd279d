-- expect: instruction budget of 100000 instructions exceeded
-- limits: instructions=1e5
return { on = { T = function(s, e)
  while true do end
end } }
