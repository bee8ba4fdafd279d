-- expect: memory limit of 64 MB exceeded
-- limits: memory_mb=64 instructions=1e9
-- events: 1
-- rss-mb: 170
-- A final refusal fails the event even when the script catches the error.
return { on = { T = function(s, e)
  local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = { i } end end)
  s.ok = ok
end } }
