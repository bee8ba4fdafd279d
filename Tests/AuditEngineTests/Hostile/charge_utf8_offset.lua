-- expect: exceeded in utf8.offset
-- limits: instructions=1e6
-- within: 15
-- utf8.offset loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local big = ("x"):rep(1e6)
  for i = 1, 1e9 do utf8.offset(big, 2e6) end
end } }
