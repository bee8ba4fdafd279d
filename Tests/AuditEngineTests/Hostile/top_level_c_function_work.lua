-- expect: instruction budget of 1000000 instructions exceeded in string.upper
-- within: 10
-- C functions at the top level are charged too.
local big = ("x"):rep(1e6)
for i = 1, 1e6 do big:upper() end
return { on = { T = function(s, e) end } }
