-- expect: instruction budget of 1000000 instructions exceeded
-- within: 10
-- The budget error is raised from the count hook, where Lua runs xpcall's message
-- handler with hooks off: the handler must not run (it would loop unmetered).
return { key = "global", on = { T = function(s, e)
  local ok, err = xpcall(function() while true do end end, function(m) local n = 0 while true do n = n + 1 end end)
  s.r = tostring(ok) .. tostring(err)
end } }
