-- expect: exceeded in pcall
-- limits: instructions=1e6
-- within: 15
-- pcall moves all its arguments inside one C call: charged one each past the first few.
local function none() end
local function again(...) for i = 1, 1e9 do pcall(none, ...) end end
return { on = { T = function(s, e)
  local t = {} for i = 1, 50000 do t[i] = i end
  again(table.unpack(t))
end } }
