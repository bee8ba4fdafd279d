-- Money as integer cents, so that sums are exact (31.3 + 6.46 is 37.76, not
-- 37.760000000000005). Load with: local money = require "money"
local M = {}

--- Cents of an amount given in units (nil counts as 0).
function M.cents(amount)
  if amount == nil then return 0 end
  return math.floor(amount * 100 + 0.5)
end

--- Units of an amount in cents, for display columns.
function M.units(cents)
  return cents / 100
end

return M
