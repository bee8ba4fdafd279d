-- expect: exceeded in string.find
-- within: 10
-- The budget error of the matcher, caught by pcall: the event still fails.
return { on = { T = function(s, e)
  for i = 1, 100 do pcall(string.find, string.rep("a", 20000), ".-.-.-.-b") end
  s.after = true
end } }
