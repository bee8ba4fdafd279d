-- expect: the projection table is too large
-- events: 1
-- within: 20
-- rss-mb: 200
-- The table a projection returns is described as JSON when it loads: shared tables in it stop there.
local t = { 1 }
for i = 1, 30 do t = { t, t } end
return { on = { T = function(s, e) end }, data = t }
