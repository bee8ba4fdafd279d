-- Road traffic fines (docs/data/road-fines.jsonl): what each fine amounts to, what
-- was paid, and what is still owed. balance = amount + expenses + penalties - paid.
local money = require "money"

local function settle(s)
  s.balance_cents = s.amount_cents + s.expense_cents + s.penalty_cents - s.paid_cents
  s.balance = money.units(s.balance_cents)
  if s.balance_cents <= 0 and s.status ~= "credit collection" then s.status = "paid" end
end

return {
  version = 1,
  init = function(fine)
    return { amount_cents = 0, expense_cents = 0, penalty_cents = 0, paid_cents = 0,
             balance_cents = 0, balance = 0.0, status = "open" }
  end,
  on = {
    ["Create Fine"] = function(s, e)
      s.amount_cents = money.cents(e.data.amount)
      s.created_at = e.occurred_at
      s.article = e.data.article
      settle(s)
      if s.balance_cents > 0 then s.status = "open" end
    end,
    ["Send Fine"] = function(s, e)
      s.expense_cents = s.expense_cents + money.cents(e.data.expense)
      settle(s)
    end,
    ["Add penalty"] = function(s, e)
      s.penalty_cents = s.penalty_cents + money.cents(e.data.amount)
      settle(s)
    end,
    ["Payment"] = function(s, e)
      s.paid_cents = s.paid_cents + money.cents(e.data.paymentAmount)
      s.last_payment_at = e.occurred_at
      settle(s)
    end,
    ["Send for Credit Collection"] = function(s, e)
      s.status = "credit collection"
      s.collection_at = e.occurred_at
    end,
    ["Send Appeal to Prefecture"] = function(s, e)
      s.appealed = true
    end,
  },
  columns = { balance = "real", balance_cents = "integer", status = "text", created_at = "text" },
}
