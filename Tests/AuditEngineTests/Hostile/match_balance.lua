-- expect: exceeded in string.gmatch
-- within: 10
-- %b scans to the end of the subject from every position.
return { on = { T = function(s, e)
  for x in ("("):rep(100000):gmatch("%b()") do end
end } }
