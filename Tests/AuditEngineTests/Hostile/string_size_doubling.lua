-- expect: string size limit of 16 MB exceeded
-- limits: instructions=1e8
-- within: 10
-- Doubling a string under pcall: the limit is not swallowed.
return { on = { T = function(s, e)
  local x = "x"
  for i = 1, 40 do pcall(function() x = x .. x end) end
  s.len = #x
end } }
