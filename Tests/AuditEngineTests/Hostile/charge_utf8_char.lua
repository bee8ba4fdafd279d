-- expect: exceeded in utf8.char
-- limits: instructions=1e6
-- within: 15
-- utf8.char loops over its arguments inside one C call: charged for that work, the loop stops.
local function again(...) for i = 1, 1e9 do utf8.char(...) end end
return { on = { T = function(s, e)
  local codes = {} for i = 1, 1000 do codes[i] = 0x4E2D end
  again(table.unpack(codes))
end } }
