-- expect: exceeded in string.gsub
-- within: 10
return { on = { T = function(s, e)
  string.gsub(("a"):rep(5000), "(a*)*b", "")
end } }
