-- expect: exceeded in string.unpack
-- limits: instructions=1e6
-- within: 15
-- string.unpack loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local packed = string.pack("s4", ("x"):rep(1e6))
  for i = 1, 1e9 do string.unpack("s4", packed) end
end } }
