-- Headless unit tests of the plugin's pure parts (no server): position conversion, the answer
-- layout, citation labels, quickfix items and the status line. Run by editors/nvim/tests/run.sh:
--   nvim --headless -u editors/nvim/tests/minimal_init.lua -c "lua require('aurora_unit').run()"

local M = {}

local passed, failed = 0, 0

local function out(s)
  io.stdout:write(s .. "\n")
  io.stdout:flush()
end

local function eq(name, found, expected)
  if vim.deep_equal(found, expected) then
    passed = passed + 1
    out("PASS " .. name)
  else
    failed = failed + 1
    out("FAIL " .. name)
    out("     expected: " .. vim.inspect(expected))
    out("     found:    " .. vim.inspect(found))
  end
end

local function test_positions()
  local c = require("aurora.client")
  -- spec/lsp.md §2.4: before `x` in `s = "é😀x"` is character 11 in utf-8 and 8 in utf-16.
  local line = 's = "é😀x"'
  local byte_x = line:find("x", 1, true) - 1
  eq("byte -> utf-8 character", c.byte_to_char(line, byte_x, "utf-8"), 11)
  eq("byte -> utf-16 character", c.byte_to_char(line, byte_x, "utf-16"), 8)
  eq("byte -> utf-32 character", c.byte_to_char(line, byte_x, "utf-32"), 7)
  eq("utf-16 character -> byte", c.char_to_byte(line, 8, "utf-16"), byte_x)
  eq("utf-8 character -> byte", c.char_to_byte(line, 11, "utf-8"), byte_x)
  eq("inside a surrogate pair rounds down", c.char_to_byte(line, 7, "utf-16"), line:find("😀", 1, true) - 1)
  eq("past the line end clamps", c.char_to_byte(line, 99, "utf-16"), #line)
end

local function test_render()
  local ask = require("aurora.ask")
  local result = {
    answer = "Configuration is loaded by `load_config`.\n\nSee [1].\n",
    citations = {
      { uri = "file:///w/app/config.py", name = "load_config", chunkId = "1",
        range = { start = { line = 17, character = 0 }, ["end"] = { line = 21, character = 0 } } },
      { uri = "file:///w/app/main.py", name = "main", chunkId = "2", stale = true,
        range = { start = { line = 7, character = 0 }, ["end"] = { line = 12, character = 13 } } },
    },
    confidence = 0.82, complexity = "SIMPLE", usage = { costUsd = 0.01257 }, partial = true, cached = false,
    warnings = { { code = "indexIncomplete", message = "The index is still being built (3/5 files)." } },
  }
  local answer = { question = "Where is the config loaded?", elapsed_ms = 2140 }
  local lines = ask.render(answer, result, function(p)
    return (p:gsub("^/w/", ""))
  end)
  eq("answer layout", lines, {
    "# Where is the config loaded?",
    "",
    "Configuration is loaded by `load_config`.",
    "",
    "See [1].",
    "",
    "## Sources",
    "",
    "1. app/config.py:18-21 load_config",
    "2. app/main.py:8-13 main (changed since read)",
    "",
    "SIMPLE · confidence 0.82 · 2.1 s · $0.0126 · partial index",
    "> The index is still being built (3/5 files).",
  })
  eq("sources line is remembered for <CR>", answer.sources_line, 9)
  local empty = ask.render({ question = "q", elapsed_ms = 0 }, { answer = "No.", citations = {}, confidence = 0, complexity = "SIMPLE", usage = {} }, tostring)
  eq("no Sources section without citations", empty, { "# q", "", "No.", "", "SIMPLE · confidence 0.00 · 0.0 s · $0.0000" })
end

local function test_search_item()
  local search = require("aurora.search")
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  vim.fn.writefile({ "x = 1", "def héllo(a):", "    return a" }, dir .. "/m.py")
  local item = search.item({
    location = { uri = vim.uri_from_fname(dir .. "/m.py"), range = { start = { line = 1, character = 0 }, ["end"] = { line = 2, character = 12 } } },
    selectionRange = { start = { line = 1, character = 4 }, ["end"] = { line = 1, character = 9 } },
    kind = "function", qualifiedName = "héllo", score = 0.9134,
  }, "utf-16")
  eq("quickfix item from a search result", item, {
    filename = dir .. "/m.py", lnum = 2, col = 5, end_lnum = 3, end_col = 13, text = "function héllo (0.91)",
  })
end

local function test_statusline()
  local c = require("aurora.client")
  local status = require("aurora.status")
  local real = c.client_for
  c.client_for = function()
    return { id = 99 }, true
  end
  local cases = {
    { { state = "indexing", busy = true, message = "", reasons = {}, indexing = { done = 120, total = 884 } }, "Aurora 120/884" },
    { { state = "ready", busy = false, message = "Ready", reasons = {} }, "Aurora ✓" },
    { { state = "degraded", busy = false, message = "Search only", reasons = { "llmNotConfigured" } }, "Aurora: no LLM" },
    { { state = "error", busy = false, message = "x", reasons = {} }, "Aurora: error" },
  }
  for _, case in ipairs(cases) do
    c.state.status[99] = case[1]
    eq("statusline for " .. case[1].state, status.statusline(), case[2])
  end
  c.state.status[99] = nil
  c.client_for = real
end

local function test_settings_tree()
  local c = require("aurora.client")
  eq("settings {aurora = {...}} unwrap", c.settings_tree({ settings = { aurora = { llm = { model = "m" } } } }), { llm = { model = "m" } })
  eq("a bare tree is accepted", c.settings_tree({ settings = { llm = { model = "m" } } }), { llm = { model = "m" } })
  eq("no settings is an empty JSON object", vim.json.encode(c.settings_tree({})), "{}")
end

local function test_root()
  local c = require("aurora.client")
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir .. "/pkg/sub", "p")
  vim.fn.writefile({}, dir .. "/pyproject.toml")
  eq("root is the nearest folder with a marker", c.find_root(dir .. "/pkg/sub/x.py", { ".git", "pyproject.toml" }), dir)
  eq("no marker, no root", c.find_root("/x.py", { "no-such-marker-here" }), nil)
end

function M.run()
  for _, t in ipairs({ test_positions, test_render, test_search_item, test_statusline, test_settings_tree, test_root }) do
    local ok, err = xpcall(t, debug.traceback)
    if not ok then
      failed = failed + 1
      out("FAIL (error) " .. err)
    end
  end
  local v = vim.version()
  out(string.format("nvim-%d.%d.%d unit: %d passed, %d failed", v.major, v.minor, v.patch, passed, failed))
  vim.cmd(failed > 0 and "cquit 1" or "qall!")
end

return M
