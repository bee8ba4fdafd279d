-- expect: exceeded in string.find
-- within: 10
return { on = { T = function(s, e)
  for i = 1, 1e9 do ("a"):rep(250):find(".-.-.-b") end
end } }
