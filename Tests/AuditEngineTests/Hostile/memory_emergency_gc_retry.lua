-- expect: ok
-- limits: memory_mb=64 instructions=1e8
-- events: 20
-- within: 60
-- An allocation refused while the excess is garbage succeeds after Lua's emergency collection:
-- the event is not failed (only a refusal after that collection is final).
return { key = "global", on = { T = function(s, e)
  local ok, v = pcall(function() return ("xy"):rep(8e6) .. e.seq end)
  if not ok then error("the allocation really failed: " .. tostring(v)) end
  s.big = v
  local b = ("xy"):rep(8e6) .. e.seq        -- live: the old s.big, v and b, 48 MB < 64 MB
  s.n = #b
end } }
