-- Runs string.find, match, gmatch, gsub and rep over a large table of cases and returns
-- one line per case: what each returned, or the error it raised. Run once with Lua's own
-- string library and once with the sandbox's functions put in its place (MATCHER, set
-- by the test): the two outputs must be the same, line for line.
if MATCHER then
  for name, f in pairs(MATCHER) do string[name] = f end
end

local out = {}

local function show(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = type(v) == "string" and string.format("%q", v) or type(v) == "table" and "table" or tostring(v)
  end
  return table.concat(parts, ",")
end

local function run(label, f, ...)
  out[#out + 1] = label .. " => " .. show(pcall(f, ...))
end

local function gmatch_all(s, p, init)
  local got, n = {}, 0
  for a, b, c in string.gmatch(s, p, init) do
    n = n + 1
    got[#got + 1] = show(a, b, c)
    if n >= 30 then break end
  end
  return table.concat(got, ";")
end

local repl_table = { a = "<A>", b = false, ab = 42, ["1"] = "one", x = {} }
local function repl_function(a, b)
  if a == "b" then return nil end
  if a == "c" then return false end
  if a == "d" then return {} end
  return "[" .. tostring(a) .. "|" .. tostring(b) .. "]"
end

local function case(s, p, init)
  local id = show(s, p, init)
  run("find " .. id, string.find, s, p, init)
  run("find plain " .. id, string.find, s, p, init, true)
  run("match " .. id, string.match, s, p, init)
  run("gmatch " .. id, gmatch_all, s, p, init)
  run("gsub str " .. id, string.gsub, s, p, "<%0|%1>")
  run("gsub pct " .. id, string.gsub, s, p, "%%")
  run("gsub tbl " .. id, string.gsub, s, p, repl_table)
  run("gsub fn " .. id, string.gsub, s, p, repl_function)
  run("gsub max " .. id, string.gsub, s, p, "-", init)
  run("gsub bad " .. id, string.gsub, s, p, "x%")
  run("gsub cap2 " .. id, string.gsub, s, p, "%2")
end

-- Chosen cases: every feature and every error.
local chosen = {
  { "hello world", "o w" }, { "hello world", "o", 6 }, { "hello", "l+" }, { "hello", "l*" }, { "hello", "l-" },
  { "hello", "l?" }, { "hello", "^h" }, { "hello", "^e" }, { "hello", "o$" }, { "hello", "l$" }, { "he$llo", "e$l" },
  { "a.b", "%." }, { "a.b", "." }, { "a+b", "a+b" }, { "a+b", "a%+b" }, { "THE (quick) fox", "%((%a+)%)" },
  { "THE (quick) fox", "%f[%a]%a+" }, { "THE (quick) fox", "%f[%A]" }, { "f(a(b)c)d", "%b()" }, { "f(a(b)c", "%b()" },
  { "[x]", "%b[]" }, { "key = value", "(%w+)%s*=%s*(%w+)" }, { "aaa", "()a()" }, { "abcabc", "(abc)%1" },
  { "abab", "(a)(b)%2" }, { "hello", "()" }, { "", "" }, { "", "^$" }, { "", "a*" }, { "abc", "" }, { "abc", "", 10 },
  { "abc", "", 4 }, { "abc", "b", -1 }, { "abc", "b", -2 }, { "abc", "b", -10 }, { "abc", "b", 0 },
  { "x\0y\0z", "%z" }, { "x\0y\0z", "\0" }, { "x\0y", "[\0]" }, { "x\0y", "[^\0]+" }, { "a]b", "[]]" }, { "a]b", "[^]]+" },
  { "a-b", "[a-]" }, { "a-b", "[-a]" }, { "a-b", "[%-]" }, { "A1_b", "[%w_]+" }, { "tab\there", "%s" },
  { "2024-06-30T12:00:00.000Z", "^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z$" },
  { "one two  three", "%S+" }, { "CamelCaseWord", "%u%l*" }, { "x=1, y=22", "(%w)=(%d+)" }, { "áé", "[\128-\255]+" },
  { "%", "%" }, { "a", "%" }, { "a", "[a" }, { "a", "[a%" }, { "a", "[%" }, { "a", "(" }, { "a", ")" }, { "a", "%1" },
  { "a", "(%1)" }, { "a", "%0" }, { "a", "%b" }, { "a", "%ba" }, { "a", "%f" }, { "a", "%fa" }, { "a", "(()" },
  { "a", "%g" }, { "a", "%9" }, { "aa", "(a)%2" }, { ("a"):rep(40), ("(a)"):rep(33) }, { ("a"):rep(40), ("(a)"):rep(32) },
  { "aaaa", ("a?"):rep(300) }, { ("a"):rep(250), ("a?"):rep(300) }, { ("a"):rep(150), ("a?"):rep(150) },
  { ("(x)"):rep(100), ("%b()"):rep(100) }, { ("a"):rep(300), ("(a)"):rep(10) .. ("a"):rep(250) },
  { "a", "[^" }, { "a", "[]" }, { "a", "[^]" }, { "]", "[]" }, { "]", "[]]" }, { "abc", "[b-a]" }, { "b", "[a-c-e]" },
  { "-", "[a-c-e]" }, { "e", "[a-c-e]" }, { "xyz", "[%a-z]" }, { "^", "[%^]" }, { "^", "^^" }, { "a^", "a^" },
  { "$", "$$" }, { "a$b", "$b" }, { "line1\nline2", "[^\n]+" }, { ".", "%W" }, { "\127", "%c" }, { "\127", "%C" },
  { "!", "%p" }, { "~", "%P" }, { "G", "%g" }, { " ", "%G" }, { "F", "%x" }, { "g", "%x" }, { "Z", "%U" }, { "q", "%L" },
  { "abc", "%a+", 2 }, { "abc", ".-b" }, { "abc", ".-" }, { "abcd", "(.-)(c)" }, { "aXb", "%u" }, { "a.b.c", "%.(.)" },
  { "hello", "(h)(e)(l)(l)(o)" }, { "hello", "((h)(e))" }, { "hello", "(()l)" }, { "abc", "a()b()c()" },
  { "a,b,,c", "([^,]*)" }, { "a,b,,c", ",?([^,]*)" }, { " x ", "^%s*(.-)%s*$" }, { "aaa", "a-$" }, { "aaa", "^a-" },
}
for n = 196, 202 do  -- either side of "pattern too complex"
  chosen[#chosen + 1] = { ("a"):rep(n), ("a?"):rep(n) }
  chosen[#chosen + 1] = { ("a"):rep(n), ("(a)"):rep(math.min(n, 32)) .. ("a?"):rep(n - 32) }
end
for _, c in ipairs(chosen) do case(c[1], c[2], c[3]) end

-- Generated cases: random patterns of these atoms over random subjects, from a fixed seed.
local atoms = {
  "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%p", "%A", "%S", "[ab]", "[^a]", "[a-c]", "[%a_]", "[]]", "[^]]",
  "%%", "%.", "%b()", "%b[]", "%f[%w]", "%f[%W]", "%f[a]", "(", ")", "()", "%1", "%2", "^", "$", "-", "[a-]", "[%]]",
  "\0", "x", " ", "[%s%d]", "%z", "[^%s]", "%(", "%)",
}
local quantifiers = { "", "", "", "*", "+", "-", "?" }
local alphabet = { "a", "b", "c", "x", " ", "(", ")", "[", "]", ".", "%", "1", "2", "\0", "-", "^", "$", "A", "\n" }
math.randomseed(20261206)
local function random_pattern()
  local parts = {}
  if math.random(8) == 1 then parts[1] = "^" end
  for _ = 1, math.random(5) do
    parts[#parts + 1] = atoms[math.random(#atoms)] .. quantifiers[math.random(#quantifiers)]
  end
  return table.concat(parts)
end
local function random_subject()
  local parts = {}
  for i = 1, math.random(0, 14) do parts[i] = alphabet[math.random(#alphabet)] end
  return table.concat(parts)
end
local inits = { false, false, false, 1, 2, 3, -1, -2, 0, 20, -20 }
for _ = 1, 6000 do
  local init = inits[math.random(#inits)]
  case(random_subject(), random_pattern(), init or nil)
end

-- string.rep: counts, separators, conversions, errors.
for _, s in ipairs({ "", "x", "ab", "abc\0d", 12, 1.5 }) do
  for _, n in ipairs({ -1, 0, 1, 2, 3, 7, 64, 1000, 2.0, 2.5, "3", "x" }) do
    for _, sep in ipairs({ false, "", "-", "<>", 7, {} }) do
      if sep == false then run("rep " .. show(s, n), string.rep, s, n) else run("rep " .. show(s, n, sep), string.rep, s, n, sep) end
    end
  end
end
run("rep none", string.rep)
run("rep too large", string.rep, ("x"):rep(300), 1e7)
run("rep too large 2", string.rep, "x", 1e6, ("y"):rep(3000))

return table.concat(out, "\n")
