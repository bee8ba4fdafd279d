-- Road fines sent to credit collection, counted per year of sending: a projection
-- keyed by a function of the event instead of by stream.
local time = require "time"

return {
  version = 1,
  key = function(e) return time.year(e.occurred_at) end,
  init = function(year) return { year = tonumber(year), fines = 0 } end,
  on = {
    ["Send for Credit Collection"] = function(s, e) s.fines = s.fines + 1 end,
  },
  columns = { year = "integer", fines = "integer" },
}
