-- expect: exceeded in utf8.codepoint
-- limits: instructions=1e6
-- within: 15
-- utf8.codepoint loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local big = ("x"):rep(1e6)
  for i = 1, 1e9 do utf8.codepoint(big, 1, 100000) end
end } }
