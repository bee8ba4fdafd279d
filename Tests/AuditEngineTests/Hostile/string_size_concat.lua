-- expect: string size limit of 16 MB exceeded
-- limits: instructions=1e8
-- within: 10
-- The VM's own `..` makes a string longer than any may be.
return { on = { T = function(s, e)
  local a = ("x"):rep(1e7)
  local b = a .. a
end } }
