-- expect: string size limit of 16 MB exceeded
-- limits: instructions=1e9
-- within: 10
return { on = { T = function(s, e)
  local big = ("x"):rep(1e7)
  local x = big:gsub("x", ("y"):rep(100))
end } }
