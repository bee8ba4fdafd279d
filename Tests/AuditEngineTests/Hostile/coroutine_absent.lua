-- expect: global 'coroutine'
-- Debian's 5.4.4 can be crashed through coroutine.close: coroutines are left out.
return { on = { T = function(s, e)
  local co = coroutine.create(function() end)
  coroutine.close(co)
end } }
