-- expect: exceeded in select
-- limits: instructions=1e6
-- within: 15
-- select loops over its arguments inside one C call: charged for that work, the loop stops.
local function again(...) for i = 1, 1e9 do select(2, ...) end end
return { on = { T = function(s, e)
  local codes = {} for i = 1, 50000 do codes[i] = i end
  again(table.unpack(codes))
end } }
