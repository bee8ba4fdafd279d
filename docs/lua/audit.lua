---@meta
-- Type annotations for audit projections, for the Lua language server (LuaLS):
-- editors then complete and check projection code. See docs/projections.md,
-- "Editor support". This file is never run.

---An event as a handler receives it. Only the fields your projection's code names
---are built (code that uses pairs/next gets all of them).
---@class audit.Event
---@field seq integer position in the log: 1, 2, 3 … with no gaps
---@field id string the event's unique id
---@field stream string the aggregate or case it belongs to
---@field version integer position within its stream: 1, 2, 3 …
---@field type string any text, e.g. "Create Fine"
---@field occurred_at string business time, UTC, "YYYY-MM-DDTHH:MM:SS.sssZ"
---@field recorded_at string when the store committed it, same form
---@field data table the payload (JSON integers as integers, null as nil)
---@field meta table metadata: correlation_id, actor, tenant, … ({} when none)

---A projection's state: a tree of plain data (tables, strings, numbers, booleans);
---each table a list 1..n or keyed by strings (see docs/projections.md, State).
---@alias audit.State table<string|integer, any>

---@alias audit.Handler fun(s: audit.State, e: audit.Event): audit.State?

---@class audit.Limits
---@field memory_mb? integer memory limit of the projection's VM, in MB (default 512)
---@field instructions? integer Lua instructions per event (default 1000000)

---What a projection file returns.
---@class audit.Projection
---@field version? integer bump when the logic changes: the next replay rebuilds (default 1)
---@field streams? string glob on stream ids, e.g. "order-*"
---@field key? "stream"|"global"|fun(e: audit.Event): (string|integer|nil) one state per key; nil skips the event
---@field init? fun(key: string): audit.State the state before a key's first event (default {})
---@field on table<string, audit.Handler> handlers by event type; only these types are delivered, or every type with a ["*"] handler (for the types without their own)
---@field columns? table<string, "text"|"integer"|"real"|"numeric"> SQL columns filled from the state
---@field limits? audit.Limits
---@field snapshot_every? integer Seqs between the snapshots replay takes (default 50000; 0: none).
---@field snapshot_keep? integer How many snapshots to keep, spread over the log (default 40).
