-- expect: instruction budget
-- rss-mb: 400
-- within: 10
-- pcall around a 1 MB string.rep, in a loop: charged for its bytes, it stops long
-- before the memory limit.
return { on = { T = function(s, e)
  local t = {}
  while true do pcall(function() t[#t + 1] = ("x"):rep(1e6) end) end
end } }
