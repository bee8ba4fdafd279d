-- expect: CPU time limit
-- limits: instructions=1e8
-- within: 10
-- Each call passes on 200,000 varargs: one instruction copies them all.
local function none() end
local function again(...) for i = 1, 1e9 do none(...) end end
return { on = { T = function(s, e)
  local t = {}
  for i = 1, 200000 do t[i] = i end
  again(table.unpack(t))
end } }
