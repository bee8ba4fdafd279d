-- expect: exceeded in string.format
-- limits: instructions=1e6
-- within: 15
-- string.format loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local big = ("\0"):rep(1e5)
  for i = 1, 1e9 do string.format("%q", big) end
end } }
