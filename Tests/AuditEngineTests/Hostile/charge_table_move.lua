-- expect: exceeded in table.move
-- limits: instructions=1e6
-- within: 15
-- table.move loops over its input inside one C call: charged for that work, the loop stops.
return { on = { T = function(s, e)
  local t = {}
  for i = 1, 1e9 do table.move(t, 1, 1e6, 2) end
end } }
