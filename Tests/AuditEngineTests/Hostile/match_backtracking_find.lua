-- expect: instruction budget of 1000000 instructions exceeded in string.find
-- within: 10
-- Backtracking inside the pattern matcher, which Lua runs in one C call.
return { on = { T = function(s, e)
  string.find(string.rep("a", 20000), ".-.-.-.-b")
end } }
