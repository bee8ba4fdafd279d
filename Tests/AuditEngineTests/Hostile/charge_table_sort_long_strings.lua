-- expect: exceeded in table.sort
-- limits: instructions=1e6
-- within: 15
-- table.sort compares long strings byte by byte: one 1 MB string a thousand times is 1 MB a comparison, charged 16 bytes to an instruction.
return { on = { T = function(s, e)
  local big = ("x"):rep(1000000)
  local t = {} for i = 1, 1000 do t[i] = big end
  for i = 1, 1e9 do table.sort(t) end
end } }
