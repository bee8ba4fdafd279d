-- expect: instruction budget
-- within: 10
-- xpcall inside a handler inside xpcall, each handler an endless loop.
local function loop() while true do end end
return { on = { T = function(s, e)
  xpcall(function()
    xpcall(loop, function() xpcall(loop, loop) loop() end)
  end, function() xpcall(loop, loop) loop() end)
end } }
