-- expect: ok
-- Ordinary errors still reach xpcall's handler, whose result xpcall returns.
return { on = { T = function(s, e)
  local ok, m = xpcall(function() error({ code = e.data.n }) end, function(err) return "handled " .. err.code end)
  assert(not ok and m == "handled " .. e.data.n, tostring(m))
  local ok2, m2 = xpcall(function() return nil + 1 end, function(err) return (err:gsub("^.-: ", "")) end)
  assert(not ok2 and m2:find("arithmetic"), m2)
  local ok3, a, b = xpcall(function(x, y) return x + y, "fine" end, print or tostring, 2, 3)
  assert(ok3 and a == 5 and b == "fine")
  s.n = (s.n or 0) + 1
end } }
