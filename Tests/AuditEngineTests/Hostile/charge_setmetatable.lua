-- expect: exceeded in setmetatable
-- limits: instructions=1e6
-- within: 15
-- setmetatable installs a copy of the metatable's fields inside one C call: charged a field each.
return { on = { T = function(s, e)
  local mt = {} for i = 1, 5000 do mt["f" .. i] = i end
  for i = 1, 1e9 do setmetatable({}, mt) end
end } }
