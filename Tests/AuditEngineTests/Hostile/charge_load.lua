-- expect: exceeded in load
-- limits: instructions=1e6
-- within: 15
-- load loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local source = ("x = 1 "):rep(2e5)
  for i = 1, 1e9 do load(source) end
end } }
