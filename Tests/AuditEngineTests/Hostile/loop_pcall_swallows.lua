-- expect: instruction budget
-- pcall cannot catch the budget error and go on.
return { on = { T = function(s, e)
  while true do pcall(function() while true do end end) end
end } }
