-- expect: memory limit of 64 MB exceeded
-- limits: memory_mb=64 instructions=1e12 seconds=60
-- rss-mb: 400
-- within: 10
-- With budget to spare, memory fills up; then pcall swallows each refused allocation
-- (after Lua's emergency collection) and the loop goes on: the first refusal stops the
-- script at its next instruction instead.
return { on = { T = function(s, e)
  local keep = {}
  pcall(function() for i = 1, 1e9 do keep[i] = { i } end end)
  while true do pcall(function() keep[#keep + 1] = { { {} } } end) end
end } }
