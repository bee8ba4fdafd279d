-- expect: exceeded in utf8.codes
-- limits: instructions=1e6
-- within: 15
-- utf8.codes loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local cont = ("\x80"):rep(1e6) local f = utf8.codes(cont)
  for i = 1, 1e9 do f(cont, 0) end
end } }
