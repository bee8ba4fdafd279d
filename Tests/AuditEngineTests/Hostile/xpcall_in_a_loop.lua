-- expect: instruction budget
-- within: 10
-- Catching the budget error with xpcall, again and again.
return { on = { T = function(s, e)
  while true do
    xpcall(function() while true do end end, function(m) return m end)
  end
end } }
