-- expect: instruction budget
-- within: 10
-- The same loop at the top level: every script is loaded (audit projections, replay
-- of another projection, audit test).
xpcall(function() while true do end end, function() while true do end end)
return { on = { T = function(s, e) end } }
