-- expect: exceeded in pairs
-- limits: instructions=1e6
-- within: 15
-- Keys that share a long prefix: sorting them compares their bytes, charged 16 to an instruction for each level of the sort.
return { on = { T = function(s, e)
  local prefix = ("k"):rep(100000)
  local t = {} for i = 1, 100 do t[prefix .. i] = i end
  for i = 1, 1e9 do for k in pairs(t) do end end
end } }
