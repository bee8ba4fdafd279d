-- expect: instruction budget
-- within: 10
-- C functions as message handlers (called with the hook off too).
return { on = { T = function(s, e)
  xpcall(function() while true do end end, pcall)
  xpcall(function() while true do end end, string.rep)
  xpcall(function() while true do end end, xpcall)
end } }
