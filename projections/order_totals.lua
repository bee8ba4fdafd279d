-- The order domain's reference projection: per order, its customer, total and status.
-- Benchmarked against a hand-rolled fold (audit-bench replay).
return {
  version = 1,
  streams = "order-*",
  init = function() return { total = 0, status = "open" } end,
  on = {
    OrderPlaced    = function(s, e) s.customer = e.data.customer; s.total = e.data.amount end,
    ItemAdded      = function(s, e) s.total = s.total + e.data.qty * e.data.price end,
    OrderCancelled = function(s, e) s.status = "cancelled" end,
  },
  columns = { customer = "text", total = "integer", status = "text" },
}
