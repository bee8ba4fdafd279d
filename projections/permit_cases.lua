-- Environmental permit applications (docs/data/permit-receipts.jsonl): per case, when
-- it was received, when the receipt phase decided (T10, whether to stop the
-- indication), the hours in between, and the hours spent before each step.
local time = require "time"

local DECISION = "T10 Determine necessity to stop indication"

local function step(s, e)
  if s.last_at then
    local hours = time.hours_between(s.last_at, e.occurred_at)
    s.step_hours[e.type] = (s.step_hours[e.type] or 0) + hours
  end
  s.steps = s.steps + 1
  s.last_step = e.type
  s.last_at = e.occurred_at
  if e.type == DECISION and s.received_at and not s.decided_at then
    s.decided_at = e.occurred_at
    s.hours_to_decision = time.hours_between(s.received_at, e.occurred_at)
  end
end

local on = {
  ["Confirmation of receipt"] = function(s, e)
    s.received_at = s.received_at or e.occurred_at
    s.channel = e.data.case_channel
    s.department = e.data.case_department
    step(s, e)
  end,
}
for _, t in ipairs({
  "T02 Check confirmation of receipt", "T03 Adjust confirmation of receipt",
  "T04 Determine confirmation of receipt", "T05 Print and send confirmation of receipt",
  "T06 Determine necessity of stop advice", DECISION,
}) do on[t] = step end

return {
  version = 1,
  init = function(case) return { steps = 0, step_hours = {} } end,
  on = on,
  columns = { received_at = "text", decided_at = "text", hours_to_decision = "real", steps = "integer", channel = "text" },
}
