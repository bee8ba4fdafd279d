// Lua 5.4 from Debian's liblua5.4-dev. Only the C sandbox (CLuaSandbox) uses it;
// Swift talks to Lua solely through CLuaSandbox's audit_lua.h.
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
