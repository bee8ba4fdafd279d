// For tests only: the sandbox's own string functions in a plain lua_State, to compare
// them with Lua's.
#ifndef AUDIT_LUA_TESTING_H
#define AUDIT_LUA_TESTING_H

struct lua_State;

/// Pushes a table of the sandbox's find, match, gmatch, gsub and rep onto the stack of
/// a state made with luaL_newstate (not a sandboxed VM: nothing is charged).
void avm_push_plain_string_functions(struct lua_State *L);

/// Whether Lua's number-to-text spells every NaN "nan" in this process (nan_text.c):
/// true when the sandbox's __snprintf_chk is the one liblua's calls reach.
int avm_nan_text_fixed(void);

#endif
