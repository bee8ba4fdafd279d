-- expect: ok
-- 64 levels of tables inside a state are stored, and read back as they were.
return { on = { T = function(s, e)
  if s.v then
    local d, t = 0, s.v
    while type(t) == "table" do d, t = d + 1, t[1] end
    assert(d == 64, "read back " .. d .. " levels")
  end
  local t = 1
  for i = 1, 64 do t = { t } end
  s.v = t
end } }
