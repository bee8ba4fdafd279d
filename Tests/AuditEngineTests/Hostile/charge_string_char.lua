-- expect: exceeded in string.char
-- limits: instructions=1e6
-- within: 15
-- string.char loops over its arguments inside one C call: charged for that work, the loop stops.
local function again(...) for i = 1, 1e9 do string.char(...) end end
return { on = { T = function(s, e)
  local codes = {} for i = 1, 1000 do codes[i] = 65 end
  again(table.unpack(codes))
end } }
