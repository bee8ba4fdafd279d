-- expect: string size limit of 16 MB exceeded
-- limits: instructions=1e9
-- within: 10
-- string.rep is refused before it copies a byte.
return { on = { T = function(s, e)
  local x = ("ab"):rep(1e7)
end } }
