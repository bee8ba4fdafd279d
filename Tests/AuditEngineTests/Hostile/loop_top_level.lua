-- expect: instruction budget
-- The top level runs under the budget too.
while true do end
return { on = { T = function(s, e) end } }
