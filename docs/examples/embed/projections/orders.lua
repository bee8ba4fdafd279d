-- Each order's total and status, from the events of its stream.
return {
  version = 1,
  init = function(key) return { total = 0, status = "open" } end,
  on = {
    OrderPlaced    = function(s, e) s.total = e.data.amount end,
    ItemAdded      = function(s, e) s.total = s.total + e.data.qty * e.data.price end,
    OrderCancelled = function(s, e) s.status = "cancelled" end,
  },
  columns = { total = "real", status = "text" },
}
