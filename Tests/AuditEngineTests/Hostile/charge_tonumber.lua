-- expect: exceeded in tonumber
-- limits: instructions=1e6
-- within: 15
-- tonumber loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local digits = ("1"):rep(1e6)
  for i = 1, 1e9 do tonumber(digits) tonumber(digits, 16) end
end } }
