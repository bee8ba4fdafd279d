-- expect: ok
-- limits: memory_mb=64 instructions=1e9 seconds=60
-- events: 1
-- within: 60
-- rss-mb: 170
-- Fill one size class with 32 MB, drop it, fill the next: memory freed in one class serves
-- the next (the old pool kept every class's free blocks, 10x the live memory).
return { key = "global", on = { T = function(s, e)
  for c = 3, 30, 3 do                        -- blocks of 48, 96, 144, ... bytes
    local pad = ("x"):rep(16 * c - 33)       -- a TString is 24 bytes + len + 1
    local keep = {}
    for i = 1, (32 << 20) // (16 * c) do keep[i] = pad .. string.format("%08d", i) end
    keep = nil
  end
  s.rounds = 10
end } }
