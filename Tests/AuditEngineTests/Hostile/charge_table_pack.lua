-- expect: exceeded in table.pack
-- limits: instructions=1e6
-- within: 15
-- table.pack loops over its arguments inside one C call: charged for that work, the loop stops.
local function again(...) for i = 1, 1e9 do table.pack(...) end end
return { on = { T = function(s, e)
  local codes = {} for i = 1, 1000 do codes[i] = i end
  again(table.unpack(codes))
end } }
