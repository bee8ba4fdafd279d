-- expect: nested more than 64 levels
-- A state's tables nest at most 64 levels inside it.
return { on = { T = function(s, e)
  local t = {}
  for i = 1, 64 do t = { t } end             -- s.v and 64 tables inside it: 65 levels
  s.v = t
end } }
