-- Arithmetic on the engine's times ("YYYY-MM-DDTHH:MM:SS.sssZ", always UTC).
-- There is no clock in the sandbox: times come only from events.
-- Load with: local time = require "time"
local M = {}

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Seconds since 1970-01-01T00:00:00Z of an engine time (a float: milliseconds count).
function M.seconds(t)
  local y, mo, d, h, mi, s, ms = string.match(t or "", "^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z$")
  if not y then error("not an engine time: " .. tostring(t), 2) end
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s) + tonumber(ms) / 1000
end

--- Hours from time a to time b (negative when b is earlier).
function M.hours_between(a, b)
  return (M.seconds(b) - M.seconds(a)) / 3600
end

--- "YYYY-MM" of a time, for grouping by month.
function M.month(t) return string.sub(t, 1, 7) end

--- "YYYY" of a time.
function M.year(t) return string.sub(t, 1, 4) end

return M
