-- expect: exceeded in string.match
-- within: 10
-- Back-references compare whole captures at every try.
return { on = { T = function(s, e)
  ("a"):rep(100000):match("(a*)%1b")
end } }
