import CLua
import CLuaSandbox
import Foundation
import Testing

/// The sandbox's pattern matcher (strmatch.c) and string.rep (charges.c) against Lua's own
/// string library: the same results and the same errors for every case of
/// Lua/matcher_equivalence.lua.
@Suite("The pattern matcher")
struct MatcherEquivalenceTests {
    static let script = try! String(
        contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Lua/matcher_equivalence.lua").path,
        encoding: .utf8)

    /// Runs `source` in a plain Lua state (all standard libraries), with the sandbox's
    /// matcher as the global MATCHER when asked; what the chunk returns, or its error.
    static func run(_ source: String, withMatcher: Bool) -> String {
        guard let L = luaL_newstate() else { return "no state" }
        defer { lua_close(L) }
        luaL_openlibs(L)
        if withMatcher {
            avm_push_plain_string_functions(L)
            lua_setglobal(L, "MATCHER")
        }
        guard luaL_loadstring(L, source) == LUA_OK, lua_pcallk(L, 0, 1, 0, 0, nil) == LUA_OK else {
            return "error: " + String(cString: lua_tolstring(L, -1, nil))
        }
        var length = 0
        guard let text = lua_tolstring(L, -1, &length) else { return "no result" }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }

    @Test("find, match, gmatch, gsub and rep give what Lua's give, errors included, for thousands of cases")
    func sameAsLua() {
        let lua = Self.run(Self.script, withMatcher: false).split(separator: "\n", omittingEmptySubsequences: false)
        let ours = Self.run(Self.script, withMatcher: true).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lua.count > 50_000, "\(lua.prefix(3))")
        #expect(lua.count == ours.count, "\(ours.prefix(3))")
        let differences = zip(lua, ours).filter { $0 != $1 }
        let shown = differences.prefix(8).map { "lua:  \($0)\nours: \($1)" }.joined(separator: "\n")
        #expect(differences.isEmpty, "\(differences.count) cases differ, e.g.:\n\(shown)")
        // The errors are among the cases compared.
        for error in ["malformed pattern (ends with '%')", "malformed pattern (missing ']')", "too many captures", "pattern too complex",
                      "invalid capture index %1", "invalid pattern capture", "missing '[' after '%f' in pattern", "unfinished capture",
                      "malformed pattern (missing arguments to '%b')", "invalid replacement value (a table)",
                      "invalid use of '%' in replacement string"] {
            #expect(lua.contains { $0.contains(error) }, "no case raises \(error)")
        }
    }
}
